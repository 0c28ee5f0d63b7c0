"""Trainer memory and throughput at scale: streaming MTL and TicketSearch on millions of rows.

Data: a finished run's Transform output (`--root`; by default a run of the large-data config,
`pipeline/configs/large_data.yaml`, on `--base-rows` synthetic rows). Its train shards are
repeated (symlinks, no copies) until a measurement's `rows` are reached, so memory and speed are
measured on real transformed examples, real vocabularies and the run's own tickets; validation
and eval are the run's own splits.

Each measurement runs in a child process, so `peak_rss_mb` (the child's `ru_maxrss`) is that
trainer's alone: loading, streaming the epochs, validation checks, keeping the best weights.
- MTLTrainer: `mtl.train` through the run's tickets for `--epochs` passes (a validation check
  at the end of each); `examples_per_s` = train rows x passes / training wall time.
- TicketSearch: `run_search` with one pruning round (dense round + one pruned round, one pass
  each, per task); `examples_per_s` counts every task's passes.
`scale.json` holds the list `runs` (component, rows, batch_size, peak_rss_mb, examples_per_s, ...)
and the ratios that the targets read, all measured in the same invocation.
"""
import argparse
import dataclasses
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time

from benchmarks import common

NAME = "scale"
LARGE_DATA_CONFIG = os.path.join(common.REPO, "pipeline", "configs", "large_data.yaml")
# (component, rows, batch size) of a full measurement; --quick uses a tiny run instead.
PLAN = (("MTLTrainer", 1_000_000, 4096), ("MTLTrainer", 1_000_000, 256),
        ("MTLTrainer", 10_000_000, 4096), ("TicketSearch", 2_000_000, 4096))


def _parser():
    p = common.add_root(common.parser(NAME, __doc__.split("\n")[0]))
    p.add_argument("--base-rows", type=int, default=1_000_000,
                   help="synthetic rows of the run made when --root holds none")
    p.add_argument("--plan", help="semicolon-separated component,rows,batch triples "
                   "(default: MTL 1M at 4096 and 256, MTL 10M at 4096, TicketSearch 2M at 4096)")
    p.add_argument("--epochs", type=int, default=1, help="MTL passes per measurement")
    p.add_argument("--child", help=argparse.SUPPRESS)      # one measurement (internal)
    return p


def scaled_examples(run, rows, work):
    """An Examples directory whose train split repeats the run's train shards to >= `rows`."""
    from modules import data
    from modules.config import InputConfig
    train = data.split_files(run.transformed_examples, "train")
    base_rows = data.Examples(train, {}, InputConfig()).num_rows
    copies = max(1, math.ceil(rows / base_rows))
    out = os.path.join(work, "scale-data", f"{os.path.basename(run.root)}-x{copies}")
    if not os.path.isdir(out):
        shutil.rmtree(out + ".partial", ignore_errors=True)
        for split in ("validation", "eval"):
            os.makedirs(os.path.join(out + ".partial", f"Split-{split}"))
            for f in data.split_files(run.transformed_examples, split):
                os.symlink(f, os.path.join(out + ".partial", f"Split-{split}",
                                           os.path.basename(f)))
        os.makedirs(os.path.join(out + ".partial", "Split-train"))
        for copy in range(copies):
            for i, f in enumerate(train):
                os.symlink(f, os.path.join(out + ".partial", "Split-train",
                                           f"copy{copy:03d}-{i:05d}.gz"))
        os.replace(out + ".partial", out)
    return out, copies * base_rows


def child(spec):
    """Run one measurement (a JSON `spec`) in this process; print its result as JSON."""
    from modules import inputs as inputs_lib
    from modules import masks as masks_lib
    from modules import mtl, ticket_search
    from modules.config import Config
    spec = json.loads(spec)
    config = Config.from_json(spec["config"])
    start = time.perf_counter()
    inputs = inputs_lib.load(spec["examples"], spec["transform_graph"], config)
    rows = inputs.train.num_rows
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    if spec["component"] == "MTLTrainer":
        _, trainer, _, fit = mtl.train(inputs, config, masks_lib.load(spec["masks"]),
                                       spec["start"])
        seconds = time.perf_counter() - start
        passes = max(fit.epochs_trained.values())
        extra = {"validation_auc": fit.validation_auc, "steps": trainer.global_step,
                 "compute_bound_examples_per_s": compute_bound_rate(trainer, inputs.train)}
    else:
        report = ticket_search.run_search(inputs, config, spec["out"])
        seconds = time.perf_counter() - start
        passes = sum(r["epochs_trained"] for t in report["tasks"].values() for r in t["rounds"])
        extra = {"rounds_per_task": config.ticket.rounds + 1,
                 "chosen_density": {t: r["chosen_density"] for t, r in report["tasks"].items()}}
    print(json.dumps({
        "component": spec["component"], "rows": rows, "batch_size": config.model.batch_size,
        "passes": passes, "train_s": seconds, "load_s": load_s,
        "examples_per_s": rows * passes / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "embedding_tables_mb": sum(t["total_mb"] for t in inputs.table_memory.values()),
        **extra}))


def compute_bound_rate(trainer, examples, steps=10):
    """Examples/s of MTL steps repeated on one batch already in memory (no input pipeline):
    what the streaming rate is compared with, on this machine in this run."""
    batch = next(iter(trainer.strategy.experimental_distribute_dataset(
        examples.batches(trainer.model_config.batch_size))))
    trainer.step(list(trainer.tasks), batch)
    trainer.read_losses()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step(list(trainer.tasks), batch)
    trainer.read_losses()                       # waits for the last step
    return steps * trainer.model_config.batch_size / (time.perf_counter() - start)


def _config_for(config, component, batch_size, epochs):
    """The measured config: `config` at `batch_size`, one pruning round / `epochs` MTL passes,
    a validation check at the end of each pass."""
    stopping = dataclasses.replace(config.mtl.stopping, max_epochs=epochs, every_steps=0,
                                   patience=epochs + 1)
    ticket_stopping = dataclasses.replace(config.ticket.stopping, max_epochs=1, every_steps=0)
    return dataclasses.replace(
        config, model=dataclasses.replace(config.model, batch_size=batch_size),
        mtl=dataclasses.replace(config.mtl, stopping=stopping),
        ticket=dataclasses.replace(config.ticket, rounds=1, stopping=ticket_stopping))


def measure_one(run, config, component, rows, batch_size, epochs, work):
    """One measurement in a child process; its JSON result."""
    from modules.ticket_search import start_prefix
    examples, _ = scaled_examples(run, rows, work)
    out = os.path.join(work, "scale-search", f"{rows}-{batch_size}")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    spec = {"component": component, "examples": examples, "transform_graph": run.transform_graph,
            "masks": run.masks, "start": start_prefix(run.masks), "out": out,
            "config": _config_for(config, component, batch_size, epochs).to_json()}
    common.log(f"{component}: {rows:,} rows, batch {batch_size}")
    machine_start, wall_start = common.machine_busy_cpu_s(), time.perf_counter()
    own_start = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--child", json.dumps(spec)],
                            cwd=common.REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{component} at {rows} rows failed:\n{result.stderr[-4000:]}")
    own_end, machine_end = resource.getrusage(resource.RUSAGE_CHILDREN), common.machine_busy_cpu_s()
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    measured["other_processes_cpu_share"] = common.other_cpu_share(
        machine_end - machine_start if machine_start is not None else None,
        (own_end.ru_utime + own_end.ru_stime) - (own_start.ru_utime + own_start.ru_stime),
        time.perf_counter() - wall_start)
    common.log(f"  {json.dumps(measured)}")
    return measured


def _plan(args):
    if args.plan:
        return [(c, int(r), int(b)) for c, r, b in
                (item.split(",") for item in args.plan.split(";"))]
    if args.quick:
        rows = common.QUICK_ROWS
        return [("MTLTrainer", rows, 64), ("MTLTrainer", 4 * rows, 64),
                ("TicketSearch", 2 * rows, 64)]
    return list(PLAN)


def measure(args):
    if args.quick or args.config:
        config = common.load_config(args)
    else:
        from modules.config import Config
        config = Config.load(LARGE_DATA_CONFIG, {"data": {"synthetic_rows": args.base_rows}})
    run = common.ensure_run(args, config)
    runs = [measure_one(run, config, c, rows, batch, args.epochs, args.work)
            for c, rows, batch in _plan(args)]
    mtl = [r for r in runs if r["component"] == "MTLTrainer"]
    at_batch = [r for r in mtl if r["batch_size"] == max(x["batch_size"] for x in mtl)]
    smallest, largest = min(at_batch, key=lambda r: r["rows"]), max(at_batch,
                                                                   key=lambda r: r["rows"])
    return {"run_root": run.root, "config": json.loads(config.to_json(
        ("input", "model", "vocab"))), "epochs": args.epochs, "runs": runs,
        "ratios": {
            "mtl_peak_rss_largest_over_smallest": largest["peak_rss_mb"] / smallest["peak_rss_mb"],
            "mtl_rows_largest_over_smallest": largest["rows"] / smallest["rows"],
            "mtl_examples_per_s_largest_over_smallest":
                largest["examples_per_s"] / smallest["examples_per_s"],
            "mtl_streaming_over_compute_bound": {
                str(r["batch_size"]): r["examples_per_s"] / r["compute_bound_examples_per_s"]
                for r in mtl if r["rows"] == smallest["rows"]}}}


def render(result):
    rows = [(r["component"], f"{r['rows']:,}", r["batch_size"], common.fmt(r["peak_rss_mb"], 0),
             common.fmt(r["examples_per_s"], 0),
             common.fmt(r.get("compute_bound_examples_per_s"), 0), common.fmt(r["train_s"], 0),
             common.fmt(r["other_processes_cpu_share"], 2))
            for r in result["runs"]]
    ratios = result["ratios"]
    return "\n".join([
        common.table(["component", "rows", "batch", "peak RSS MB", "examples/s",
                      "compute-bound ex/s", "train s", "other CPU share"], rows),
        f"MTL peak RSS ratio (largest/smallest rows, {ratios['mtl_rows_largest_over_smallest']:.1f}x"
        f" rows): {ratios['mtl_peak_rss_largest_over_smallest']:.3f}",
        f"MTL streaming / compute-bound rate: {ratios['mtl_streaming_over_compute_bound']}"])


def main(argv=None):
    """Measure, print the table and write the JSON; returns the JSON payload. With `--child`,
    run that one measurement here and print its JSON instead."""
    args = _parser().parse_args(argv)
    if args.child:
        return child(args.child)
    return common.run_script(NAME, _parser(), measure, render, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
