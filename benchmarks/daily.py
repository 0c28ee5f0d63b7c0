"""Daily runs: the second day's run (warm start, reused tickets) against the first day's and
against a cold start on the same day, in wall time and quality.

Data: `lt4rec synth --spans 2` at `--rows` rows per span (default 100,000; --quick: 800), one
world whose ids appear over the days and whose tastes drift. Per seed (`model.seed`; default
42,43,44) in a fresh root: span 1 runs (nothing pushed yet: tickets searched, MTL from θ0,
version 1 pushed); span 2 runs with `mtl.warm_start: latest` and `ticket.reuse: latest` (MTL
starts from version 1 through its masks; TicketSearch trains nothing); then span 2 runs again in
the same root with `warm_start: off` and `ticket.reuse: never`: the cold start a day had before
(tickets searched on span 2, MTL from θ0). Its ExampleGen, statistics and Transform come from
TFX's cache, so its wall time is not compared; its TicketSearch and MTLTrainer times are.
Quality: each run's model is chosen on validation (ticket rounds, early stopping); the eval AUCs
are reported, warm minus cold paired per seed, mean ± std.
"""
import json
import os
import shutil
import statistics
import sys
import time

from benchmarks import common
from benchmarks.pipeline_time import component_times

NAME = "daily"
ARMS = {"span1": (1, {}),
        "span2_warm": (2, {}),
        "span2_cold": (2, {"mtl": {"warm_start": "off"}, "ticket": {"reuse": "never"}})}
DAILY = {"mtl": {"warm_start": "latest"}, "ticket": {"reuse": "latest"}}


def _parser():
    p = common.parser(NAME, __doc__.split("\n")[0])
    p.add_argument("--rows", type=int, help="rows per span (default 100000; quick: "
                   f"{common.QUICK_ROWS})")
    p.add_argument("--seeds", help="comma-separated model seeds (default 42,43,44; quick: 1)")
    return p


def _data(args, rows, seed):
    """The two spans' directory (made once under --work)."""
    from pipeline import synthetic_data
    out = os.path.join(os.path.abspath(args.work), "data", f"spans-2x{rows}-seed{seed}")
    if not os.path.isdir(out):
        shutil.rmtree(out + ".partial", ignore_errors=True)
        synthetic_data.write_spans(out + ".partial", 2, rows, seed)
        os.replace(out + ".partial", out)
    return out


def _config(args, seed, arm_overrides):
    """The measured config (`common.load_config`) with the daily settings, `seed`, no AUC lower
    bound (so that span 1 always pushes a version to start from) and the arm's overrides."""
    from modules.config import Config
    values = json.loads(common.load_config(args).to_json())
    for overrides in (DAILY, {"model": {"seed": seed}, "evaluation": {"auc_lower_bound": 0.0}},
                      arm_overrides):
        for section, settings in overrides.items():
            values[section].update(settings)
    return Config.from_json(json.dumps(values))


def _arm(args, data, root, seed, name):
    """Run one arm; its wall time, component times and summary."""
    from pipeline import local_runner, summary
    span, overrides = ARMS[name]
    config = _config(args, seed, overrides)
    common.log(f"seed {seed}, {name}: span {span} under {root}")
    busy_before = common.machine_busy_cpu_s()
    start = time.perf_counter()
    outputs = local_runner.run(data, root, config, span=span)
    wall = time.perf_counter() - start
    busy = common.machine_busy_cpu_s() - busy_before if busy_before is not None else None
    layout = local_runner.RunLayout(root)
    result = summary.build(outputs, layout, config)
    times, _, _ = component_times(layout, config.pipeline_name)
    tasks = config.spec.task_names()
    return {"span": span, "wall_s": wall, "components_s": times,
            "machine_busy_cpu_s": busy,
            "masks_reused": result["masks_reused"],
            "warm_started_from": result["warm_started_from"],
            "mtl_epochs": {t: result[t]["epochs_trained"]["mtl"] for t in tasks},
            "served_by": {t: (result[t]["negative_transfer"] or {}).get("served_by")
                          for t in tasks},
            "eval_auc": {**{t: result[t]["mtl_auc"] for t in tasks},
                         **{p: result[f"{p}_auc"] for p in result["outputs"]["products"]}},
            "validation_auc": {t: result[t]["validation_auc"]["mtl"] for t in tasks},
            "blessed": result["blessed"], "pushed_model": result["pushed_model"]}


def _mean_std(values):
    return {"mean": statistics.mean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "values": values}


def measure(args):
    rows = args.rows or (common.QUICK_ROWS if args.quick else 100_000)
    seeds = [int(s) for s in (args.seeds or ("1" if args.quick else "42,43,44")).split(",")]
    config = common.load_config(args)
    data = _data(args, rows, config.data.synthetic_seed)
    runs = {}
    for seed in seeds:
        root = os.path.join(os.path.abspath(args.work), f"daily-{rows}-seed{seed}")
        shutil.rmtree(root, ignore_errors=True)
        runs[str(seed)] = {name: _arm(args, data, root, seed, name) for name in ARMS}
    seeds = [str(s) for s in seeds]             # the JSON's keys
    outputs = list(runs[seeds[0]]["span1"]["eval_auc"])
    paired = {o: _mean_std([runs[s]["span2_warm"]["eval_auc"][o]
                            - runs[s]["span2_cold"]["eval_auc"][o] for s in seeds])
              for o in outputs}
    steps = ("TicketSearch", "MTLTrainer")
    return {"rows_per_span": rows, "seeds": seeds, "data": data, "runs": runs,
            "config": {"hidden_units": list(config.model.hidden_units),
                       "ticket_rounds": config.ticket.rounds,
                       "mtl_max_epochs": config.mtl.stopping.max_epochs},
            "span2_over_span1_wall": _mean_std([runs[s]["span2_warm"]["wall_s"]
                                                / runs[s]["span1"]["wall_s"] for s in seeds]),
            "warm_over_cold_s": {step: _mean_std([
                runs[s]["span2_warm"]["components_s"][step]
                / runs[s]["span2_cold"]["components_s"][step] for s in seeds]) for step in steps},
            "eval_auc": {name: {o: _mean_std([runs[s][name]["eval_auc"][o] for s in seeds])
                                for o in outputs} for name in ARMS},
            "warm_minus_cold_eval_auc": {o: {**paired[o], "warm_wins": sum(
                d > 0 for d in paired[o]["values"])} for o in outputs}}


def render(result):
    runs, seeds = result["runs"], result["seeds"]
    rows = []
    for name in ARMS:
        def mean(key, step=None, name=name):
            values = [runs[s][name][key] if step is None else runs[s][name][key].get(step)
                      for s in seeds]
            return statistics.mean(values) if None not in values else None
        rows.append([name, common.fmt(mean("wall_s"), 0),
                     common.fmt(mean("components_s", "TicketSearch"), 0),
                     common.fmt(mean("components_s", "MTLTrainer"), 0)] +
                    [f"{result['eval_auc'][name][o]['mean']:.4f} ± "
                     f"{result['eval_auc'][name][o]['std']:.4f}"
                     for o in result["eval_auc"][name]])
    outputs = list(result["eval_auc"]["span1"])
    text = [f"Daily runs, {result['rows_per_span']:,} rows per span, seeds {', '.join(seeds)} "
            "(mean over seeds; eval AUC of the validation-selected model)",
            common.table(["run", "wall s", "TicketSearch s", "MTLTrainer s"]
                         + [f"{o} AUC" for o in outputs], rows),
            f"span 2 (warm, reused tickets) / span 1 wall time: "
            f"{result['span2_over_span1_wall']['mean']:.2f} ± "
            f"{result['span2_over_span1_wall']['std']:.2f}",
            "warm / cold span 2: " + ", ".join(
                f"{step} {v['mean']:.2f}x" for step, v in result["warm_over_cold_s"].items()),
            "warm - cold eval AUC (paired per seed): " + ", ".join(
                f"{o} {v['mean']:+.4f} ± {v['std']:.4f} ({v['warm_wins']}/{len(seeds)} seeds)"
                for o, v in result["warm_minus_cold_eval_auc"].items())]
    return "\n".join(text)


def main(argv=None):
    """Measure, print the table and write the JSON; returns the JSON payload."""
    return common.run_script(NAME, _parser(), measure, render, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
