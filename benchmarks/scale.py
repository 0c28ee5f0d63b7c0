"""Trainer memory and throughput at scale: MTL and TicketSearch on millions of distinct rows.

Data: two synthetic days of the generator's default profile, `--base-rows` and `--large-rows` raw
rows (pools of videos, users, providers and tags grow with the rows, so every row is distinct and
the vocabularies grow as in real logs), each run through the pipeline up to Transform with the
large-data config (`pipeline/configs/large_data.yaml`) under `--work/scale-<rows>`. Every
measurement reads a day's own Transform output: its train split (no row repeated), its
vocabularies, its validation split.

Each measurement runs in a child process, so `peak_rss_mb` (the child's `VmHWM`) is that
trainer's alone: loading, streaming the epochs, validation checks, keeping the best weights.
- TicketSearch on the large day first: `run_search` with one pruning round (dense round + one
  pruned round, one pass each, per task); `examples_per_s` counts every task's passes. Its masks
  are the tickets of every MTL measurement (masks cover the MLP only, whose shape the two days
  share); MTL starts from a fresh seeded initialisation on both days.
- MTLTrainer: `mtl.train` through those tickets for `--epochs` passes (a validation check at
  the end of each); `examples_per_s` = train rows x passes / training wall time; beside it the
  compute-bound rate of the same process (MTL steps repeated on one batch held in memory) and
  `fit_seconds`, the training time per phase (`FitReport.seconds`: input wait, first steps,
  steps, validation checks).
`scale.json` holds the list `runs` (component, day, rows, distinct_rows, batch_size, peak_rss_mb,
embedding_tables_mb, examples_per_s, ...) and the ratios that the targets read, all measured in the
same invocation.
"""
import argparse
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import time

from benchmarks import common

NAME = "scale"
LARGE_DATA_CONFIG = os.path.join(common.REPO, "pipeline", "configs", "large_data.yaml")
# (component, day, batch size) of a full measurement, in order (TicketSearch first: its masks
# are the MTL measurements' tickets).
PLAN = (("TicketSearch", "large", 4096), ("MTLTrainer", "base", 4096),
        ("MTLTrainer", "base", 256), ("MTLTrainer", "large", 4096))
# Raw rows of the two days: ~72% of them land in the train split.
BASE_ROWS, LARGE_ROWS = 1_400_000, 4_200_000
ROWS_PER_SHARD = 500_000


def _parser():
    p = common.parser(NAME, __doc__.split("\n")[0])
    p.add_argument("--base-rows", type=int, default=BASE_ROWS,
                   help="raw synthetic rows of the smaller day (default: %(default)s, ~1M train)")
    p.add_argument("--large-rows", type=int, default=LARGE_ROWS,
                   help="raw synthetic rows of the larger day (default: %(default)s, ~3M train)")
    p.add_argument("--plan", help="semicolon-separated component,day,batch triples, day "
                   "base or large (default: TicketSearch large 4096; MTL base 4096 and 256, "
                   "large 4096); a plan with MTL starts with a TicketSearch")
    p.add_argument("--epochs", type=int, default=1, help="MTL passes per measurement")
    p.add_argument("--child", help=argparse.SUPPRESS)      # one measurement (internal)
    return p


def transformed_day(args, config, rows):
    """(Run root, MLMD outputs) of `rows` synthetic rows run through the pipeline up to
    Transform (made once under --work; TFX's cache serves it afterwards)."""
    from pipeline import local_runner, mlmd
    root = os.path.join(os.path.abspath(args.work), f"scale-{rows}")
    layout = local_runner.RunLayout(root)
    outputs = (mlmd.latest_outputs(layout.connection(), config.pipeline_name)
               if os.path.exists(layout.metadata_path) else {})
    if not outputs.get("Transform", {}).get("transformed_examples"):
        data, _ = common.synthetic_data(args.work, rows, config.data.synthetic_seed,
                                        shards=max(1, rows // ROWS_PER_SHARD))
        common.log(f"running the pipeline up to Transform under {root} on {data}")
        outputs = local_runner.run(data, root, config, until="Transform")
    return root, outputs


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
        _, trainer, _, fit = mtl.train(inputs, config, masks_lib.load(spec["masks"]))
        seconds = time.perf_counter() - start
        passes = max(fit.epochs_trained.values())
        peak = common.peak_rss_mb()                 # before the breakdown's reader allocates
        extra = {"validation_auc": fit.validation_auc, "steps": trainer.global_step,
                 "fit_seconds": fit.seconds,
                 **step_breakdown(trainer, inputs.train)}
    else:
        report = ticket_search.run_search(inputs, config, spec["out"])
        seconds = time.perf_counter() - start
        peak = common.peak_rss_mb()
        passes = sum(r["epochs_trained"] for t in report["tasks"].values() for r in t["rounds"])
        extra = {"rounds_per_task": config.ticket.rounds + 1,
                 "chosen_density": {t: r["chosen_density"] for t, r in report["tasks"].items()}}
    tables = inputs.table_memory.values()
    print(json.dumps({
        "component": spec["component"], "day": spec["day"], "rows": rows,
        "distinct_rows": rows, "batch_size": config.model.batch_size,
        "passes": passes, "train_s": seconds, "load_s": load_s,
        "examples_per_s": rows * passes / seconds,
        "peak_rss_mb": peak, "vocabulary_rows": sum(t["rows"] for t in tables),
        "embedding_tables_mb": sum(t["total_mb"] for t in tables),
        "embedding_parameters_mb": sum(t["parameters_mb"] for t in tables),
        **extra}))


def step_breakdown(trainer, examples, held=20, streamed_examples=400_000):
    """Where a streaming MTL step's time goes, as examples/s measured in this process (after
    training, so every function is traced; after its peak RSS is read, as the extra reader
    allocates): `compute_bound` repeats the steps of one batch held in memory;
    `held_distinct_batches` steps through `held` different batches held in memory (the same
    work on varied ids, without the reader); `input_only` runs the streaming reader alone
    (read, shuffle, parse) over `streamed_examples`, timed from its first batch (once the
    shuffle buffer is full). If the reader and the step shared the cores with no overlap,
    streaming would run at 1 / (1 / held + 1 / input) (`serial_estimate`)."""
    import itertools
    batch_size = trainer.model_config.batch_size
    tasks = list(trainer.tasks)
    batches = [b for _, b in itertools.islice(trainer.batches(examples, seed=7), held)]

    def rate(steps, count):
        start = time.perf_counter()
        for batch in steps:
            trainer.step(tasks, batch)
        trainer.read_losses()                       # waits for the last step
        return count * batch_size / (time.perf_counter() - start)

    rate(batches[:2], 2)                            # warm-up
    bound = rate([batches[0]] * held, held)
    distinct = rate(batches, len(batches))
    reading = iter(examples.batches(batch_size, seed=8))
    next(reading)                                   # fills the shuffle buffer
    start = time.perf_counter()
    read = sum(1 for _ in itertools.islice(reading, max(1, streamed_examples // batch_size)))
    reader = read * batch_size / (time.perf_counter() - start)
    return {"compute_bound_examples_per_s": bound,
            "held_distinct_batches_examples_per_s": distinct,
            "input_only_examples_per_s": reader,
            "serial_estimate_examples_per_s": 1 / (1 / distinct + 1 / reader)}


def _config_for(config, batch_size, epochs):
    """The measured config: `config` at `batch_size`, one pruning round / `epochs` MTL passes,
    a validation check at the end of each pass."""
    stopping = dataclasses.replace(config.mtl.stopping, max_epochs=epochs, every_steps=0,
                                   patience=epochs + 1)
    ticket_stopping = dataclasses.replace(config.ticket.stopping, max_epochs=1, every_steps=0)
    return dataclasses.replace(
        config, model=dataclasses.replace(config.model, batch_size=batch_size),
        mtl=dataclasses.replace(config.mtl, stopping=stopping),
        ticket=dataclasses.replace(config.ticket, rounds=1, stopping=ticket_stopping))


def measure_one(outputs, day, config, component, batch_size, epochs, tickets):
    """One measurement in a child process on a day's Transform `outputs`; its JSON result.
    TicketSearch writes its masks to `tickets`, MTL reads them from there."""
    if component == "TicketSearch":
        shutil.rmtree(tickets, ignore_errors=True)
        os.makedirs(tickets)
    elif not os.path.exists(os.path.join(tickets, "ticket_report.json")):
        raise ValueError("the plan's MTL measurements need a TicketSearch measurement first")
    transform = outputs["Transform"]
    spec = {"component": component, "day": day,
            "examples": transform["transformed_examples"][0].uri,
            "transform_graph": transform["transform_graph"][0].uri, "masks": tickets,
            "out": tickets, "config": _config_for(config, batch_size, epochs).to_json()}
    common.log(f"{component}: {day} day, batch {batch_size}")
    machine_start, wall_start = common.machine_busy_cpu_s(), time.perf_counter()
    own_start = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--child", json.dumps(spec)],
                            cwd=common.REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{component} on the {day} day failed:\n{result.stderr[-4000:]}")
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
        return [(c, day, int(b)) for c, day, b in
                (item.split(",") for item in args.plan.split(";"))]
    if args.quick:
        return [("TicketSearch", "large", 64), ("MTLTrainer", "base", 64),
                ("MTLTrainer", "large", 64)]
    return list(PLAN)


def ratios(mtl):
    """How the MTL peak RSS of the largest day compares with the smallest day's plus the growth
    of the embedding tables (as the budget counts them), and the streaming rate with the
    compute-bound one and with the serial estimate (`step_breakdown`)."""
    at_batch = [r for r in mtl if r["batch_size"] == max(x["batch_size"] for x in mtl)]
    smallest = min(at_batch, key=lambda r: r["rows"])
    largest = max(at_batch, key=lambda r: r["rows"])
    growth = largest["embedding_tables_mb"] - smallest["embedding_tables_mb"]
    return {
        "mtl_rows_largest_over_smallest": largest["rows"] / smallest["rows"],
        "mtl_peak_rss_largest_over_smallest": largest["peak_rss_mb"] / smallest["peak_rss_mb"],
        "mtl_embedding_tables_growth_mb": growth,
        "mtl_peak_rss_largest_over_smallest_plus_table_growth":
            largest["peak_rss_mb"] / (smallest["peak_rss_mb"] + growth),
        "mtl_examples_per_s_largest_over_smallest":
            largest["examples_per_s"] / smallest["examples_per_s"],
        "mtl_streaming_over_compute_bound": {
            f"{r['day']}@{r['batch_size']}": r["examples_per_s"] / r["compute_bound_examples_per_s"]
            for r in mtl},
        "mtl_streaming_over_serial_estimate": {
            f"{r['day']}@{r['batch_size']}":
                r["examples_per_s"] / r["serial_estimate_examples_per_s"] for r in mtl},
        # Training wall time beyond the steps at the held-batch rate: what one pass pays once
        # (filling the shuffle buffer before the first batch, tracing, the validation check).
        "mtl_seconds_beyond_steps": {
            f"{r['day']}@{r['batch_size']}": r["train_s"] - r["rows"] * r["passes"]
            / r["held_distinct_batches_examples_per_s"] for r in mtl},
        # Where training's wall time went, measured inside fit (`FitReport.seconds`; the rest
        # is building the model and the guard), and the rate of the streaming steps alone.
        "mtl_phase_seconds": {
            f"{r['day']}@{r['batch_size']}": {
                **r["fit_seconds"], "outside_fit": r["train_s"] - sum(r["fit_seconds"].values())}
            for r in mtl},
        "mtl_streaming_steps_over_compute_bound": {
            f"{r['day']}@{r['batch_size']}": (r["steps"] - 1) * r["batch_size"]
            / r["fit_seconds"]["steps"] / r["compute_bound_examples_per_s"] for r in mtl}}


def measure(args):
    if args.quick:
        config = common.load_config(args)
        sizes = {"base": common.QUICK_ROWS, "large": 2 * common.QUICK_ROWS}
    else:
        from modules.config import Config
        config = Config.load(args.config or LARGE_DATA_CONFIG)
        sizes = {"base": args.base_rows, "large": args.large_rows}
    plan = _plan(args)
    days = {day: transformed_day(args, config, sizes[day])
            for day in sorted({d for _, d, _ in plan})}
    tickets = os.path.join(os.path.abspath(args.work), "scale-tickets")
    runs = [measure_one(days[day][1], day, config, component, batch, args.epochs, tickets)
            for component, day, batch in plan]
    mtl = [r for r in runs if r["component"] == "MTLTrainer"]
    return {"run_roots": {day: root for day, (root, _) in days.items()},
            "raw_rows": {day: sizes[day] for day in days},
            "config": json.loads(config.to_json(("input", "model", "vocab"))),
            "epochs": args.epochs, "runs": runs, "ratios": ratios(mtl) if mtl else {}}


def render(result):
    rows = [(r["component"], r["day"], f"{r['rows']:,}", f"{r['vocabulary_rows']:,}",
             r["batch_size"], common.fmt(r["peak_rss_mb"], 0),
             common.fmt(r["embedding_tables_mb"], 0), common.fmt(r["examples_per_s"], 0),
             common.fmt(r.get("compute_bound_examples_per_s"), 0), common.fmt(r["train_s"], 0),
             common.fmt(r["other_processes_cpu_share"], 2))
            for r in result["runs"]]
    lines = [common.table(["component", "day", "distinct train rows", "vocabulary rows", "batch",
                           "peak RSS MB", "tables MB (budget)", "examples/s",
                           "compute-bound ex/s", "train s", "other CPU share"], rows)]
    same_run = result["ratios"]
    if same_run:
        lines += [
            f"MTL peak RSS, largest / smallest day "
            f"({same_run['mtl_rows_largest_over_smallest']:.1f}x rows): "
            f"{same_run['mtl_peak_rss_largest_over_smallest']:.3f}; / (smallest + "
            f"{same_run['mtl_embedding_tables_growth_mb']:,.0f} MB table growth): "
            f"{same_run['mtl_peak_rss_largest_over_smallest_plus_table_growth']:.3f}",
            f"MTL streaming / compute-bound rate: {same_run['mtl_streaming_over_compute_bound']}",
            f"MTL streaming / serial estimate: "
            f"{same_run['mtl_streaming_over_serial_estimate']}",
            f"MTL seconds beyond the steps: {same_run['mtl_seconds_beyond_steps']}",
            f"MTL streamed steps alone / compute-bound rate: "
            f"{same_run['mtl_streaming_steps_over_compute_bound']}",
            f"MTL training seconds per phase: {same_run['mtl_phase_seconds']}"]
    return "\n".join(lines)


def main(argv=None):
    """Measure, print the table and write the JSON; returns the JSON payload. With `--child`,
    run that one measurement here and print its JSON instead."""
    args = _parser().parse_args(argv)
    if args.child:
        return child(args.child)
    return common.run_script(NAME, _parser(), measure, render, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
