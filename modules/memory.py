"""What the embedding tables cost in training memory, and the budget that refuses oversized ones."""
FLOAT_BYTES = 4
MB = 1 << 20
# Temporaries of a network's random initialisation, in copies of its parameters (measured).
INITIALISATION_COPIES = 2


class MemoryBudgetError(ValueError):
    """The embedding tables would exceed `model.table_memory_budget_mb`; names the groups."""


def table_memory(vocab_sizes, config, tasks):
    """{table: {"rows", "parameters_mb", "adam_slots_mb", "copies_mb", "initialisation_mb",
    "total_mb"}}: what a trainer holds for the table at its peak.

    A table (a vocabulary group of the spec, or a bucketised numeric feature) has its embedding
    (rows x its embedding_dim) and, with `model.linear_term`, one linear table (rows x 1) per
    member feature and task. Each task's Adam keeps two slots of every table it steps (the
    shared embedding: every task; a linear table: its own task only). Beside them a trainer
    holds whole copies of the parameters: TicketSearch one (its best check; θ0, the rewind point
    and the chosen rounds are read from and written to disk), MTL one while it trains (its best
    check) and then up to one per task (the ticket networks its negative-transfer guard compares
    with, kept for a task served from its ticket). Building a network draws each table's random
    initial values in temporaries: two more copies at that moment. The peak memory test
    (`tests/test_memory_budget.py`) measures both trainers against this count.
    """
    members = {**config.spec.vocabulary_groups(),
               **{name: (name,) for name in config.spec.bucket_tables()}}
    dims = config.spec.embedding_dims(config.model.embedding_dim)
    n_tasks = len(tasks)
    result = {}
    for group, rows in sorted(vocab_sizes.items()):
        embedding = rows * dims[group]
        linear = rows * len(members[group]) * n_tasks if config.model.linear_term else 0
        parameters = embedding + linear
        slots = 2 * n_tasks * embedding + 2 * linear
        sizes = {"parameters_mb": parameters, "adam_slots_mb": slots,
                 "copies_mb": max(1, n_tasks) * parameters,
                 "initialisation_mb": INITIALISATION_COPIES * parameters}
        sizes = {name: count * FLOAT_BYTES / MB for name, count in sizes.items()}
        result[group] = {"rows": int(rows), **sizes, "total_mb": sum(sizes.values())}
    return result


def check_budget(vocab_sizes, config, tasks, log=None):
    """Log each table's rows and memory; raise MemoryBudgetError naming the largest groups if
    their total exceeds `model.table_memory_budget_mb` (0: no limit). Returns `table_memory`."""
    tables = table_memory(vocab_sizes, config, tasks)
    total = sum(t["total_mb"] for t in tables.values())
    if log:
        for group, t in tables.items():
            log(f"embedding table {group}: {t['rows']:,} rows, {t['parameters_mb']:.1f} MB "
                f"parameters + {t['adam_slots_mb']:.1f} MB Adam slots ({len(tasks)} tasks) + "
                f"{t['copies_mb']:.1f} MB held copies + {t['initialisation_mb']:.1f} MB "
                f"initialisation = {t['total_mb']:.1f} MB")
        log(f"embedding tables: {total:.1f} MB in all")
    budget = config.model.table_memory_budget_mb
    if budget and total > budget:
        largest = sorted(tables.items(), key=lambda item: -item[1]["total_mb"])[:3]
        named = "; ".join(f"{group} {t['total_mb']:,.0f} MB ({t['rows']:,} rows)"
                          for group, t in largest)
        raise MemoryBudgetError(
            f"embedding tables need {total:,.0f} MB, over model.table_memory_budget_mb = "
            f"{budget:,.0f}; largest groups: {named}. Bound them with "
            f"spec.groups.<group>.top_k or frequency_threshold (unseen ids then share "
            f"num_oov_buckets hashed rows), or raise the budget")
    return tables
