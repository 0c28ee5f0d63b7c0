"""Training throughput (examples/s): input pipeline, ticket-search rounds, masked MTL; peak memory.

Measured on a finished run's transformed train split (default synthetic data), at each batch
size (default 256 and 4096, plus the config's own batch size):

- input pipeline alone: one epoch of the trainers' streaming reader (`data.Examples.batches`:
  read the gzip shards, shuffle, parse, prefetch);
- ticket-search round: steady-state single-task training through a pruned mask (the inner loop of
  every round), after a warm-up epoch that traces the step function;
- ticket search end to end: `ticket_search.search_task` for each task (all rounds, with rewinding,
  pruning, per-round evaluation and tracing), as examples trained per wall-clock second;
- masked MTL: the `mtl.train` loop (round robin: every batch steps CTR then CVR through their
  masks), steady state after a warm-up epoch; examples/s counts each example once;
- a per-batch breakdown of one MTL step at the largest batch size (embeddings + interactions,
  forward, forward + backward, full step with Adam per task) to show what dominates;
- peak resident memory of each phase.

Steady-state numbers are medians over `--repeats` timed passes of >= `--min-examples` examples.
"""
import dataclasses
import math
import sys
import time

from benchmarks import common

NAME = "throughput"


def _parser():
    p = common.add_root(common.parser(NAME, __doc__.split("\n")[0]))
    p.add_argument("--batch-sizes",
                   help="comma-separated batch sizes (default: 256,4096 and the config's batch "
                   "size; quick: 256)")
    p.add_argument("--repeats", type=int, help="timed passes per measurement (default 5; quick 2)")
    p.add_argument("--min-examples", type=int,
                   help="examples per timed pass (whole epochs; default 64000, quick 1)")
    p.add_argument("--search-repeats", type=int, default=1,
                   help="end-to-end ticket searches per batch size (default %(default)s)")
    return p


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def input_pipeline(inputs, batch_sizes, repeats):
    """Rate of the streaming reader alone (read, shuffle, parse, prefetch) per batch size."""
    rows = inputs.train.num_rows
    result = {"batches": {}}
    for batch_size in batch_sizes:
        def iterate():
            for _ in inputs.train.batches(batch_size, seed=1):
                pass
        iterate()                                   # warm-up (builds the tf.data graph)
        with common.PeakMemory() as peak:
            rates = [rows / _timed(iterate) for _ in range(repeats)]
        result["batches"][str(batch_size)] = {"examples_per_s": common.spread(rates),
                                              "peak_rss_mb": peak.megabytes}
    return result


def _trainer(inputs, config, batch_size, task_masks):
    from modules import inputs as inputs_lib
    from modules.training import MaskedTrainer
    model_config = dataclasses.replace(config.model, batch_size=batch_size)
    network = inputs_lib.build_network(inputs, config, config.spec.task_names())
    trainer = MaskedTrainer(network, inputs.strategy,
                            dataclasses.replace(config, model=model_config),
                            config.mtl.loss_weights)
    for task, masks in task_masks.items():
        trainer.set_masks(task, masks)
    trainer.reset_optimizers()
    return trainer


def steady_state(inputs, config, batch_size, task_masks, tasks, repeats, min_examples):
    """Warm-up epoch (tracing), then median examples/s over `repeats` passes of whole epochs."""
    rows = inputs.train.num_rows
    epochs = max(1, math.ceil(min_examples / rows))
    with common.PeakMemory() as peak:
        trainer = _trainer(inputs, config, batch_size, task_masks)
        per_epoch = math.ceil(rows / batch_size)
        warmup = _timed(lambda: trainer.train_steps(inputs.train, lambda _: list(tasks),
                                                    per_epoch, seed=1))
        rates, phases = [], []
        for repeat in range(repeats):
            start = time.perf_counter()
            phases.append(trainer.train_steps(inputs.train, lambda _: list(tasks),
                                              epochs * per_epoch, seed=2 + repeat))
            rates.append(epochs * rows / (time.perf_counter() - start))
    return {"examples_per_s": common.spread(rates), "task_steps_per_example": len(tasks),
            "epochs_per_pass": epochs, "examples_per_pass": epochs * rows,
            "batches_per_epoch": math.ceil(rows / batch_size),
            "pass_seconds": {phase: common.median([p[phase] for p in phases])
                             for phase in ("input_wait", "steps")},
            "warmup_epoch_s_incl_tracing": warmup, "peak_rss_mb": peak.megabytes}


def search_end_to_end(inputs, config, batch_size, repeats):
    """Every task's whole search (as the TicketSearch component runs it) at `batch_size`."""
    from modules import ticket_search
    from modules.training import restore, snapshot
    ticket = config.ticket
    walls, per_task, rates = [], {}, []
    with common.PeakMemory() as peak:
        for repeat in range(repeats):
            trainer = _trainer(inputs, config, batch_size, {})
            theta0 = snapshot(trainer.network)
            start, trained = time.perf_counter(), 0.0
            for task in config.ticket_tasks():
                task_start = time.perf_counter()
                rounds = ticket_search.search_task(
                    trainer, task, inputs, ticket, lambda: restore(trainer.network, theta0),
                    config.model.seed + repeat)
                trained += sum(r.epochs_trained for r in rounds) * inputs.train.num_rows
                per_task.setdefault(task, []).append(time.perf_counter() - task_start)
            walls.append(time.perf_counter() - start)
            rates.append(trained / walls[-1])
    return {"wall_s": common.spread(walls), "rounds_per_task": ticket.rounds + 1,
            "examples_trained_last_repeat": trained,
            "per_task_wall_s": {t: common.median(v) for t, v in per_task.items()},
            "examples_per_s": common.spread(rates),
            "note": "rounds train with early stopping on validation (validation checks included)",
            "peak_rss_mb": peak.megabytes}


def step_breakdown(inputs, config, batch_size, task_masks, repeats):
    """Milliseconds per batch of the parts of one MTL step (fixed batch, traced functions)."""
    import tensorflow as tf

    from modules import tasks as task_lib
    trainer = _trainer(inputs, config, batch_size, task_masks)
    network = trainer.network
    batch = next(iter(inputs.train.batches(batch_size, seed=1)))
    rows = int(next(iter(batch.values())).shape[0])      # < batch_size on tiny data
    masks = trainer.masks["ctr"]

    @tf.function
    def embed(b):
        emb, _ = network.embed(b)
        return tf.matmul(emb, emb, transpose_b=True)

    @tf.function
    def forward(b):
        return network(b, task="ctr", masks=masks)

    variables = network.task_variables("ctr")

    @tf.function
    def backward(b):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(task_lib.per_example_loss(
                config.spec.task("ctr"), b, network(b, task="ctr", masks=masks)))
        return tape.gradient(loss, variables)

    def both_steps(b):
        for task in config.spec.task_names():
            trainer._step_fn(task)(b)

    def per_call(fn, calls):
        fn()
        times = []
        for _ in range(repeats):
            times.append(_timed(lambda: [fn() for _ in range(calls)]) / calls * 1000)
        return common.median(times)

    calls = 3 if batch_size >= 2048 else 10
    parts = {
        "embeddings_and_interactions_ms": per_call(lambda: embed(batch).numpy(), calls),
        "forward_one_task_ms": per_call(lambda: forward(batch).numpy(), calls),
        "forward_backward_one_task_ms": per_call(
            lambda: [g.numpy() if hasattr(g, "numpy") else g.values.numpy()
                     for g in backward(batch)], calls),
        "mtl_step_both_tasks_ms": per_call(lambda: both_steps(batch), calls),
    }
    parts["compute_bound_examples_per_s"] = rows / parts["mtl_step_both_tasks_ms"] * 1000
    parts["batch_rows"] = rows
    return parts


def over_compute_bound(mtl, bound):
    """Streamed MTL at the breakdown's batch size as a fraction of that batch's compute-bound
    rate measured in the same run: whole passes, and their steps alone (input waits excluded)."""
    steps_rate = mtl["examples_per_pass"] / mtl["pass_seconds"]["steps"]
    return {"passes": mtl["examples_per_s"]["median"] / bound, "steps_alone": steps_rate / bound}


def measure(args):
    config = common.load_config(args)
    run = common.ensure_run(args, config)
    repeats = args.repeats or (2 if args.quick else 5)
    min_examples = args.min_examples if args.min_examples is not None else (
        1 if args.quick else 64000)
    if args.batch_sizes:
        batch_sizes = sorted({int(b) for b in args.batch_sizes.split(",")})
    elif args.quick:
        batch_sizes = [256]
    else:
        batch_sizes = sorted({256, 4096, config.model.batch_size})
    common.log(f"loading the transformed splits of {run.root}")
    with common.PeakMemory() as load_peak:
        start = time.perf_counter()
        inputs = run.load_inputs(config)
        load_s = time.perf_counter() - start

    from modules import inputs as inputs_lib
    from modules import masks as masks_lib
    from modules import pruning
    probe = inputs_lib.build_network(inputs, config, config.spec.task_names())
    kernels = [k.numpy() for k in probe.prunable_weights()]
    total = sum(k.size for k in kernels)
    mtl_masks = masks_lib.load(run.masks)
    if sorted(mtl_masks) != sorted(config.spec.task_names()) or any(
            [m.shape for m in mtl_masks[t]] != [k.shape for k in kernels] for t in mtl_masks):
        # The run's tickets do not fit this config's MLP: prune θ0 to the final density instead
        # (compute does not depend on which connections are masked).
        pruned = pruning.prune_global(kernels, pruning.ones_like(kernels),
                                      round(config.ticket.final_density * total))
        mtl_masks = {task: pruned for task in config.spec.task_names()}
        mask_source = "theta0 magnitude pruning"
    else:
        mask_source = f"run tickets {run.masks}"
    ticket_mask = mtl_masks["ctr"]
    result = {"run_root": run.root, "train_rows": inputs.train.num_rows,
              "eval_rows": inputs.evaluation.num_rows, "batch_sizes": batch_sizes,
              "config_batch_size": config.model.batch_size,
              "hidden_units": list(config.model.hidden_units),
              "prunable_weights": int(total), "mask_source": mask_source,
              "mask_density": {t: pruning.density(m) for t, m in mtl_masks.items()},
              "load_splits_s": load_s, "load_peak_rss_mb": load_peak.megabytes,
              "repeats": repeats, "min_examples_per_pass": min_examples,
              "targets": {}, "ticket_round": {}, "ticket_search": {}, "mtl": {}}
    common.log("input pipeline")
    result["input_pipeline"] = input_pipeline(inputs, batch_sizes, repeats)
    for batch_size in batch_sizes:
        common.log(f"ticket-search round, batch {batch_size}")
        result["ticket_round"][str(batch_size)] = steady_state(
            inputs, config, batch_size, {"ctr": ticket_mask}, ["ctr"], repeats, min_examples)
        common.log(f"masked MTL, batch {batch_size}")
        result["mtl"][str(batch_size)] = steady_state(
            inputs, config, batch_size, mtl_masks, config.spec.task_names(), repeats,
            min_examples)
        common.log(f"ticket search end to end, batch {batch_size}")
        result["ticket_search"][str(batch_size)] = search_end_to_end(
            inputs, config, batch_size, args.search_repeats)
    largest = max(batch_sizes)
    common.log(f"MTL step breakdown, batch {largest}")
    result["mtl_step_breakdown"] = dict(step_breakdown(inputs, config, largest, mtl_masks,
                                                       repeats), batch_size=largest)
    mtl_4096 = result["mtl"].get("4096", {}).get("examples_per_s", {}).get("median")
    result["targets"]["mtl_examples_per_s_at_4096"] = common.target_check(
        mtl_4096, common.TARGETS["mtl_examples_per_s_at_4096"])
    result["mtl_over_compute_bound"] = over_compute_bound(
        result["mtl"][str(largest)], result["mtl_step_breakdown"]["compute_bound_examples_per_s"])
    result["reference_tf1_examples_per_s"] = common.REFERENCE_TF1_EXAMPLES_PER_S
    return result


def render(result):
    ref = result["reference_tf1_examples_per_s"]
    rows = []
    for batch_size in result["batch_sizes"]:
        key = str(batch_size)
        batches = result["input_pipeline"]["batches"][key]["examples_per_s"]["median"]
        for label, part in (("ticket-search round (1 task)", result["ticket_round"][key]),
                            ("ticket search end to end", result["ticket_search"][key]),
                            ("masked MTL (2 tasks)", result["mtl"][key])):
            rate = part["examples_per_s"]["median"]
            rows.append([label, common.fmt(batch_size), common.fmt(rate, 0),
                         common.fmt(rate / ref, 0) + "x", common.fmt(part["peak_rss_mb"], 0)])
        rows.append(["input batches alone", common.fmt(batch_size), common.fmt(batches, 0),
                     common.fmt(batches / ref, 0) + "x", "-"])
    text = [f"Training throughput on {result['train_rows']:,} train rows "
            f"(MLP {result['hidden_units']}, medians of {result['repeats']} passes; "
            f"vs. TF1 reference {ref:g} ex/s)",
            common.table(["stage", "batch", "examples/s", "vs TF1", "peak RSS MB"], rows)]
    breakdown = result["mtl_step_breakdown"]
    text += ["", f"One MTL step at batch {breakdown['batch_size']} ({breakdown['batch_rows']:,} "
             f"rows; ms per batch, median):",
             common.table(["part", "ms"], [
                 [k[:-3], common.fmt(v, 1)] for k, v in breakdown.items() if k.endswith("_ms")]),
             f"compute-bound MTL rate at this batch: "
             f"{common.fmt(breakdown['compute_bound_examples_per_s'], 0)} examples/s"]
    share = result.get("mtl_over_compute_bound")
    if share:
        waits = result["mtl"][str(breakdown["batch_size"])]["pass_seconds"]
        text.append(f"streamed MTL at this batch: {share['passes']:.2f} of it per pass, "
                    f"{share['steps_alone']:.2f} in its steps alone (a pass: "
                    f"{waits['steps']:.1f} s of steps, {waits['input_wait']:.1f} s waiting for "
                    f"input)")
    check = result["targets"]["mtl_examples_per_s_at_4096"]
    if check["measured"] is not None:
        text.append(f"target: masked MTL >= {check['target']:,.0f} examples/s at batch 4096: "
                    f"measured {check['measured']:,.0f} -> {'met' if check['met'] else 'MISSED'}")
    return "\n".join(text)


def main(argv=None):
    """Measure, print the table and write the JSON; returns the JSON payload."""
    return common.run_script(NAME, _parser(), measure, render, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
