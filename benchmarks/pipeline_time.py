"""Whole-pipeline wall time per component at several data sizes, and how it grows with data.

For each size (default 20k, 100k and 1M rows of default synthetic data, `lt4rec synth`-style:
one gzip shard, hash-split 4:1) the pipeline runs from scratch (fresh root, no cache) with
LocalDagRunner, as `lt4rec run` does. Per component the wall time is taken from its MLMD
execution (create -> last update); `orchestration` is the rest of the measured total (launchers,
drivers, MLMD, resolvers). Peak memory counts this process and its children (Beam workers).
CPU seconds (this process and its children, sampled) are given per component and in total:
unlike wall time they hardly change when other processes compete for the cores, and
`other_processes_cpu_share` says how much they did (0 = quiet machine).
Scaling: ratio of each time to the smallest size's, and the exponent
log(t2/t1) / log(n2/n1) between consecutive sizes (1.0 = linear, 0 = fixed cost).
Data generation is timed separately (it is not part of the pipeline) and only when the data is
generated in this run (`--fresh-data`); by default existing data under --work is reused.
With `--extrapolate-to N` (default 1,000,000, when not measured) per-component times at N are
extrapolated from the two largest measured sizes with t = a + b·rows: clearly labelled, not
measured.
"""
import math
import os
import shutil
import sys
import time

from benchmarks import common

NAME = "pipeline_time"
COMPONENTS = ("ImportExampleGen", "ImportSchemaGen", "StatisticsGen", "StrictExampleValidator",
              "Transform", "TicketSearch", "MTLTrainer", "BaselineModel", "Evaluator",
              "AtomicPusher")


def _parser():
    p = common.parser(NAME, __doc__.split("\n")[0])
    p.add_argument("--sizes", help="comma-separated row counts (default 20000,100000,1000000; "
                   f"quick: {common.QUICK_ROWS})")
    p.add_argument("--fresh-data", action="store_true",
                   help="regenerate the synthetic data (and time it) even if it exists")
    p.add_argument("--extrapolate-to", type=int, default=1_000_000,
                   help="rows to extrapolate to when that size was not measured (0: never)")
    return p


def component_times(layout, pipeline_name):
    """{node: seconds}, {node: start offset s} and {node: (start, end) epoch s} of each node's
    latest execution in MLMD."""
    from ml_metadata import metadata_store
    store = metadata_store.MetadataStore(layout.connection())
    prefix = pipeline_name + "."
    times, windows = {}, {}
    for context in store.get_contexts_by_type("node"):
        if not context.name.startswith(prefix):
            continue
        executions = store.get_executions_by_context(context.id)
        if not executions:
            continue
        latest = max(executions, key=lambda e: (e.create_time_since_epoch, e.id))
        node = context.name[len(prefix):]
        windows[node] = (latest.create_time_since_epoch / 1e3,
                         latest.last_update_time_since_epoch / 1e3)
        times[node] = windows[node][1] - windows[node][0]
    first = min(w[0] for w in windows.values()) if windows else 0.0
    return times, {node: w[0] - first for node, w in windows.items()}, windows


def one_size(args, config, rows):
    """Generate (or reuse) data, run the pipeline in a fresh root, collect times."""
    from pipeline import local_runner
    data, generate_s = common.synthetic_data(args.work, rows, config.data.synthetic_seed,
                                             fresh=args.fresh_data)
    root = os.path.abspath(os.path.join(args.work, f"pipeline-{rows}"))
    shutil.rmtree(root, ignore_errors=True)
    common.log(f"{rows:,} rows: running the pipeline under {root}")
    busy_before = common.machine_busy_cpu_s()
    with common.PeakMemory(interval=0.2, cpu=True) as peak:
        start, start_epoch = time.perf_counter(), time.time()
        local_runner.run(data, root, config, enable_cache=False)
        total, end_epoch = time.perf_counter() - start, time.time()
    layout = local_runner.RunLayout(root)
    times, starts, windows = component_times(layout, config.pipeline_name)
    components = {node: times[node] for node in COMPONENTS if node in times}
    cpu = {node: peak.cpu_between(*windows[node]) for node in components}
    total_cpu = peak.cpu_between(start_epoch, end_epoch)
    busy = common.machine_busy_cpu_s() - busy_before if busy_before is not None else None
    other_share = common.other_cpu_share(busy, total_cpu, total)
    other = {node: t for node, t in times.items() if node not in COMPONENTS}
    measured = sum(times.values())
    data_bytes = sum(os.path.getsize(os.path.join(d, f))
                     for d, _, fs in os.walk(data) for f in fs)
    return {"rows": rows, "data_dir": data, "data_bytes": data_bytes,
            "generate_data_s": generate_s, "root": root, "total_s": total,
            "components_s": components, "other_nodes_s": other,
            "orchestration_s": total - measured, "start_offsets_s": starts,
            "peak_rss_mb_incl_children": peak.megabytes,
            "cpu_s_incl_children": {"total": total_cpu, "components": cpu},
            "other_processes_cpu_share": other_share,
            "seconds_per_100k_rows": total / rows * 1e5}


def scaling(sizes):
    """Ratios to the smallest size and exponents between consecutive sizes."""
    base = sizes[0]
    keys = ["total"] + [c for c in COMPONENTS if c in base["components_s"]]

    def t(size, key):
        return size["total_s"] if key == "total" else size["components_s"].get(key)

    out = []
    for prev, size in zip([None] + sizes[:-1], sizes):
        entry = {"rows": size["rows"], "rows_ratio_to_smallest": size["rows"] / base["rows"],
                 "time_ratio_to_smallest": {}, "exponent_vs_previous": {}}
        for key in keys:
            if t(size, key) is not None and t(base, key):
                entry["time_ratio_to_smallest"][key] = t(size, key) / t(base, key)
            if prev is not None and t(prev, key) and t(size, key):
                entry["exponent_vs_previous"][key] = (
                    math.log(t(size, key) / t(prev, key)) / math.log(size["rows"] / prev["rows"]))
        out.append(entry)
    return out


def extrapolate(sizes, rows):
    """Linear (a + b·rows) extrapolation from the two largest measured sizes. NOT measured."""
    if len(sizes) < 2 or rows in [s["rows"] for s in sizes]:
        return None
    small, large = sizes[-2], sizes[-1]
    keys = ["total"] + [c for c in COMPONENTS if c in large["components_s"]]

    def t(size, key):
        return size["total_s"] if key == "total" else size["components_s"][key]

    estimate = {}
    for key in keys:
        slope = (t(large, key) - t(small, key)) / (large["rows"] - small["rows"])
        estimate[key] = max(t(large, key), t(large, key) + slope * (rows - large["rows"]))
    return {"label": "EXTRAPOLATED, not measured", "rows": rows,
            "from_rows": [small["rows"], large["rows"]], "model": "t = a + b * rows per component",
            "total_s": estimate["total"],
            "components_s": {k: v for k, v in estimate.items() if k != "total"}}


def measure(args):
    config = common.load_config(args)
    default_sizes = str(common.QUICK_ROWS) if args.quick else "20000,100000,1000000"
    rows_list = sorted(int(s) for s in (args.sizes or default_sizes).split(","))
    sizes = [one_size(args, config, rows) for rows in rows_list]
    by_rows = {s["rows"]: s for s in sizes}
    result = {"sizes": sizes, "scaling": scaling(sizes),
              "beam_pipeline_args": list(config.beam_pipeline_args),
              "config": {"hidden_units": list(config.model.hidden_units),
                         "batch_size": config.model.batch_size,
                         "ticket_rounds": config.ticket.rounds, "mtl_max_epochs": config.mtl.stopping.max_epochs},
              "targets": {}}
    if args.extrapolate_to:
        result["extrapolated"] = extrapolate(sizes, args.extrapolate_to)
    t100k = by_rows.get(100_000, {}).get("total_s")
    t1m = by_rows.get(1_000_000, {}).get("total_s")
    result["targets"]["pipeline_seconds_at_100k"] = common.target_check(
        t100k, common.TARGETS["pipeline_seconds_at_100k"], higher_is_better=False)
    result["targets"]["pipeline_1m_over_100k"] = common.target_check(
        t1m / t100k if t1m and t100k else None, common.TARGETS["pipeline_1m_over_100k"],
        higher_is_better=False)
    if t100k and not t1m and result.get("extrapolated") and \
            result["extrapolated"]["rows"] == 1_000_000:
        result["targets"]["pipeline_1m_over_100k"]["extrapolated"] = \
            result["extrapolated"]["total_s"] / t100k
    return result


def render(result):
    sizes = result["sizes"]
    headers = ["component"] + [f"{s['rows']:,} rows" for s in sizes]
    extra = result.get("extrapolated")
    if extra:
        headers.append(f"{extra['rows']:,} EXTRAPOLATED")
    if len(sizes) > 1:
        headers.append(f"ratio {sizes[-1]['rows'] // sizes[0]['rows']}x data")
    rows = []
    names = [c for c in COMPONENTS if any(c in s["components_s"] for s in sizes)]
    for name in names + ["orchestration", "TOTAL"]:
        def t(size):
            if name == "TOTAL":
                return size["total_s"]
            if name == "orchestration":
                return size["orchestration_s"]
            return size["components_s"].get(name)
        row = [name] + [common.fmt(t(s), 1) for s in sizes]
        if extra:
            row.append(common.fmt(extra["total_s"] if name == "TOTAL" else
                                  extra["components_s"].get(name), 0))
        if len(sizes) > 1:
            first, last = t(sizes[0]), t(sizes[-1])
            row.append(common.fmt(last / first, 1) + "x" if first and last else "-")
        rows.append(row)
    rows.append(["TOTAL CPU s (incl. Beam workers)"] +
                [common.fmt((s.get("cpu_s_incl_children") or {}).get("total"), 1)
                 for s in sizes] + (["-"] if extra else []) + (["-"] if len(sizes) > 1 else []))
    rows.append(["other processes' share of cores"] +
                [common.fmt(s.get("other_processes_cpu_share"), 2) for s in sizes] +
                (["-"] if extra else []) + (["-"] if len(sizes) > 1 else []))
    rows.append(["peak RSS MB (incl. Beam workers)"] +
                [common.fmt(s["peak_rss_mb_incl_children"], 0) for s in sizes] +
                (["-"] if extra else []) + (["-"] if len(sizes) > 1 else []))
    text = ["Pipeline wall time (s) per component, fresh root, no cache",
            common.table(headers, rows)]
    for key, check in result["targets"].items():
        if check["measured"] is not None:
            text.append(f"target {key}: {check['target']:g}, measured {check['measured']:.1f} "
                        f"-> {'met' if check['met'] else 'MISSED'}")
        elif check.get("extrapolated") is not None:
            text.append(f"target {key}: {check['target']:g}, EXTRAPOLATED (not measured) "
                        f"{check['extrapolated']:.1f}")
    return "\n".join(text)


def main(argv=None):
    """Measure, print the table and write the JSON; returns the JSON payload."""
    return common.run_script(NAME, _parser(), measure, render, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
