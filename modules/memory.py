"""What the embedding tables cost in training memory, and the budget that refuses oversized ones."""
FLOAT_BYTES = 4
MB = 1 << 20
# Whole copies of the parameters beside them at a trainer's peak: its best check, held, and up to
# two in temporaries (a network's random initialisation, restoring a checkpoint or a held check).
COPIES = 3


class MemoryBudgetError(ValueError):
    """The embedding tables would exceed `model.table_memory_budget_mb`; names the groups."""


def table_memory(vocab_sizes, config, tasks):
    """{table: {"rows", "parameters_mb", "adam_slots_mb", "copies_mb", "total_mb"}}: what a
    trainer holds for the table at its peak.

    A table (a vocabulary group of the spec, or a bucketised numeric feature) has its embedding
    (rows x its embedding_dim) and, with `model.linear_term`, one linear table (rows x 1) per
    member feature and task. Each task's Adam keeps two slots of every table it steps (the
    shared embedding: every task; a linear table: its own task only). Beside them a trainer
    holds `COPIES` whole copies of the parameters: its best check (TicketSearch reads θ0 and the
    rewind point from disk and writes each chosen round there; MTL drops its optimizers before
    its negative-transfer guard loads the ticket networks) and temporaries. The peak memory test
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
                 "copies_mb": COPIES * parameters}
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
                f"{t['copies_mb']:.1f} MB copies = {t['total_mb']:.1f} MB")
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
