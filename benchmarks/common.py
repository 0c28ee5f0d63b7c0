"""Shared helpers of the benchmark scripts: arguments, runs to measure, timing, memory, output.

Every script is run as `python -m benchmarks.<name> [--quick] [--out FILE.json] [--root DIR]`:
it measures everything it reports in that one process, prints a small table and writes JSON.
Times are medians over repeats (every repeat is kept in the JSON too).

A *run* is a finished pipeline run root (`lt4rec run --root DIR`): the throughput, serving, model
size and quality scripts read its transformed examples, vocabularies, masks and pushed model. With
`--root DIR` that run is used (and made first if DIR holds none); without it a run on default
synthetic data (20,000 rows; `--quick`: 800 rows and a tiny model) is made once under `--work`
and reused by later scripts.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO, "benchmarks", "results")
DEFAULT_WORK = os.path.join(tempfile.gettempdir(), "lt4rec-bench")

# The targets (benchmarks, not tests) and the reference throughput it quotes.
TARGETS = {
    "mtl_examples_per_s_at_4096": 5000.0,      # masked MTL training, batch 4096, 2-core CPU
    "serving_p50_ms_at_batch_1": 5.0,
    "serving_examples_per_s_at_batch_256": 20000.0,
    "pipeline_seconds_at_100k": 15 * 60.0,
    "pipeline_1m_over_100k": 10.0,
    "model_megabytes": 50.0,
}
REFERENCE_TF1_EXAMPLES_PER_S = 13.0            # original TF1 implementation, quoted by the issue

# `--quick`: the CI-sized setup (like tests' tiny_pipeline_config: small data and MLP, in-process
# Beam, gates that always pass so that a model is pushed).
QUICK_ROWS = 800
QUICK_OVERRIDES = {
    "data": {"synthetic_rows": QUICK_ROWS},
    "model": {"hidden_units": [32, 16], "batch_size": 64, "learning_rate": 0.003},
    "ticket": {"rounds": 2, "final_density": 0.3, "stopping": {"max_epochs": 2}},
    "mtl": {"stopping": {"max_epochs": 2}},
    "evaluation": {"auc_lower_bound": 0.0, "max_auc_regression": 1.0},
    "beam_pipeline_args": ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
}


def peak_rss_mb():
    """This process's peak resident memory since it started its program (Linux `VmHWM`).
    Unlike `ru_maxrss`, which Linux carries over from the process that forked it (a child of a
    2 GB process reports at least 2 GB), it counts this program's memory alone."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_busy_cpu_s():
    """CPU seconds all processes of the machine have used since boot (None if unknown)."""
    try:
        import psutil
        machine = psutil.cpu_times()
        return sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
    except Exception:  # pylint: disable=broad-except  (contention figures are best effort)
        return None


def _cpu_snapshot():
    """(wall s, machine busy CPU s, this process's CPU s incl. reaped children)."""
    busy = machine_busy_cpu_s()
    try:
        import psutil
        own = psutil.Process(os.getpid()).cpu_times()
        return time.time(), busy, own.user + own.system + own.children_user + own.children_system
    except Exception:  # pylint: disable=broad-except  (contention figures are best effort)
        return time.time(), None, None


_START = {"load": os.getloadavg(), "cpu": _cpu_snapshot()}


# ----------------------------------------------------------------------------- arguments

def parser(name, description):
    """An ArgumentParser with the options every benchmark script takes."""
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=description)
    p.add_argument("--quick", action="store_true",
                   help="tiny data, tiny model, few repeats (a cheap smoke run for CI)")
    p.add_argument("--out", help=f"JSON output (default: benchmarks/results/{name}.json; with "
                   f"--quick: {DEFAULT_WORK}/{name}-quick.json)")
    p.add_argument("--config", help="JSON/YAML config overriding the defaults (as `lt4rec run`)")
    p.add_argument("--work", default=DEFAULT_WORK,
                   help="scratch directory for generated data and runs (default: %(default)s)")
    return p


def add_root(p):
    """`--root`: the pipeline run to measure."""
    p.add_argument("--root", help="pipeline run root to measure (made first if it holds no "
                   "finished run); default: a run on default synthetic data under --work")
    return p


def out_path(args, name):
    """Where a script writes its JSON."""
    if args.out:
        return args.out
    if args.quick:
        return os.path.join(args.work, f"{name}-quick.json")
    return os.path.join(RESULTS_DIR, f"{name}.json")


def load_config(args, spec_file=None):
    """The Config the script measures: defaults (or `spec_file`'s spec, then --config), with the
    quick overrides."""
    from modules.config import Config
    return Config.load(args.config, QUICK_OVERRIDES if args.quick else None, spec_file)


# ----------------------------------------------------------------------------- runs

def synthetic_data(work, rows, seed, fresh=False, profile="default", splits=False, shards=1):
    """(directory, seconds to generate or None if reused) of synthetic data (generator
    `profile`; `splits`: train/ and eval/ subdirectories; `shards` files, same rows)."""
    from pipeline import synthetic_data as synth
    name = f"synthetic-{rows}-seed{seed}" + ("" if profile == "default" else f"-{profile}") \
        + ("-splits" if splits else "")
    out = os.path.join(os.path.abspath(work), "data", name)
    if os.path.isdir(out) and not fresh:
        return out, None
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out + ".partial", ignore_errors=True)
    start = time.perf_counter()
    synth.write_dataset(out + ".partial", rows=rows, seed=seed, profile=profile, splits=splits,
                        shards=shards)
    seconds = time.perf_counter() - start
    os.replace(out + ".partial", out)
    return out, seconds


def feed_data(work, spec, rows, seed):
    """(directory, schema path) of the bring-your-own-data worked example's log
    (`examples/feed/make_data.py`) at `rows` rows, converted by `lt4rec convert` for `spec`, and
    the schema `lt4rec schema` infers from it."""
    import importlib.util

    from pipeline import convert, infer_schema
    out = os.path.join(os.path.abspath(work), "data", f"feed-{rows}-seed{seed}")
    schema = out + ".schema.pbtxt"
    if os.path.isdir(out):
        return out, schema
    for path in (out + ".partial", out + ".csv"):     # a partial write is redone
        shutil.rmtree(path, ignore_errors=True)
    module_spec = importlib.util.spec_from_file_location(
        "make_data", os.path.join(REPO, "examples", "feed", "make_data.py"))
    make_data = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(make_data)
    os.makedirs(out + ".csv")
    make_data.write_csv(make_data.rows(rows, seed), os.path.join(out + ".csv", "feed.csv"))
    convert.convert(os.path.join(out + ".csv", "feed.csv"), spec, out + ".partial")
    inferred, examples = infer_schema.infer(os.path.join(out + ".partial", "*"), spec)
    if os.path.exists(schema):
        os.remove(schema)
    infer_schema.write(inferred, schema, out, examples)
    os.replace(out + ".partial", out)       # last: the data exists only once its schema does
    shutil.rmtree(out + ".csv")
    return out, schema


def finished_outputs(root, config):
    """The MLMD outputs of a finished run under `root` (with a pushed model), else None."""
    from pipeline import local_runner, mlmd
    layout = local_runner.RunLayout(root)
    if not os.path.exists(layout.metadata_path):
        return None
    outputs = mlmd.latest_outputs(layout.connection(), config.pipeline_name)
    needed = [("Transform", "transformed_examples"), ("Transform", "transform_graph"),
              ("TicketSearch", "masks"), ("MTLTrainer", "model"), ("MTLTrainer", "model_run"),
              ("ImportExampleGen", "examples")]
    if not all(outputs.get(node, {}).get(key) for node, key in needed):
        return None
    return outputs


def ensure_run(args, config, profile="default", splits=False, make_data=None):
    """A Run for `--root` (used as it is), or for the default root under --work, which is always
    brought up to date (the pipeline reruns; TFX's cache serves what the code and config did not
    change, so a run made by older code is never measured), on synthetic data of `profile`, or
    on what `make_data(work, spec, rows, seed)` returns: (data directory, schema path)."""
    suffix = "" if profile == "default" else f"-{profile}"
    name = "quick-run" if args.quick else f"run-{config.data.synthetic_rows}"
    root = os.path.abspath(args.root or os.path.join(args.work, name + suffix))
    outputs = finished_outputs(root, config) if args.root else None
    if outputs is None:
        from pipeline import local_runner
        rows, seed = config.data.synthetic_rows, config.data.synthetic_seed
        if make_data:
            data, schema = make_data(args.work, config.spec, rows, seed)
        else:
            data, schema = synthetic_data(args.work, rows, seed, profile=profile,
                                          splits=splits)[0], local_runner.SCHEMA_PATH
        log(f"running the pipeline under {root} on {data} (cached steps are reused)")
        local_runner.run(data, root, config, schema_path=schema)
        outputs = finished_outputs(root, config)
        if outputs is None:
            raise RuntimeError(f"the pipeline run under {root} did not finish")
    return Run(root, outputs)


class Run:
    """Where a finished run keeps what the benchmarks read."""

    def __init__(self, root, outputs):
        from pipeline import local_runner
        self.root = root
        self.outputs = outputs
        self.layout = local_runner.RunLayout(root)

    def uri(self, node, key):
        return self.outputs[node][key][0].uri

    @property
    def transformed_examples(self):
        return self.uri("Transform", "transformed_examples")

    @property
    def transform_graph(self):
        return self.uri("Transform", "transform_graph")

    @property
    def masks(self):
        return self.uri("TicketSearch", "masks")

    @property
    def raw_examples(self):
        return self.uri("ImportExampleGen", "examples")

    @property
    def model_dir(self):
        """The trained SavedModel (`Format-Serving`)."""
        return os.path.join(self.uri("MTLTrainer", "model"), "Format-Serving")

    @property
    def serving_model(self):
        """The latest pushed version if there is one, else the trained SavedModel."""
        from pipeline import serving
        try:
            return serving.latest_version(self.layout.serving_dir)
        except FileNotFoundError:
            return self.model_dir

    def training_report(self):
        path = os.path.join(self.uri("MTLTrainer", "model_run"), "training_report.json")
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def ticket_report(self):
        with open(os.path.join(self.masks, "ticket_report.json"), encoding="utf-8") as f:
            return json.load(f)

    def load_inputs(self, config):
        """TrainingInputs of this run's transformed splits (seeds everything from `config`)."""
        from modules import inputs as inputs_lib
        return inputs_lib.load(self.transformed_examples, self.transform_graph, config,
                               devices=config.model.devices)


# ----------------------------------------------------------------------------- measuring

def median(values):
    return float(statistics.median(values)) if values else None


def spread(values):
    """{median, min, max, repeats: [...]} of a list of measurements."""
    return {"median": median(values), "min": float(min(values)), "max": float(max(values)),
            "repeats": [float(v) for v in values]}


def percentile(values, q):
    """The q-th percentile (0..100) by linear interpolation."""
    import numpy as np
    return float(np.percentile(np.asarray(values, dtype=float), q))


class PeakMemory:
    """Peak resident memory (this process plus its children) while the block runs, sampled.

    `with PeakMemory() as peak: ...` then `peak.bytes`. Sampling every `interval` seconds can miss
    spikes shorter than that; `resource.getrusage` gives the process-lifetime peak (see
    `environment()`). With `cpu=True` it also records the CPU seconds used by this process and
    its children over time, so `cpu_between(t0, t1)` gives the CPU time of a window (epoch
    seconds): unlike wall time, it barely changes when other processes compete for the cores.
    """

    def __init__(self, interval=0.02, cpu=False):
        self.interval = interval
        self.bytes = 0
        self.cpu = cpu
        self.cpu_samples = []            # (epoch seconds, CPU seconds incl. children)
        self._stop = threading.Event()

    def _rss(self):
        import psutil
        process = psutil.Process(os.getpid())
        total = process.memory_info().rss
        cpu = 0.0
        if self.cpu:
            own = process.cpu_times()
            cpu = own.user + own.system + own.children_user + own.children_system
        for child in process.children(recursive=True):
            try:
                total += child.memory_info().rss
                if self.cpu:
                    times = child.cpu_times()
                    cpu += times.user + times.system
            except psutil.Error:
                pass
        if self.cpu:
            self.cpu_samples.append((time.time(), cpu))
        return total

    def cpu_between(self, start, end):
        """CPU seconds (process + children) used between two epoch times, interpolated."""
        import numpy as np
        if len(self.cpu_samples) < 2:
            return None
        times, values = zip(*self.cpu_samples)
        # Reaped children move their time into children_*: keep the series non-decreasing.
        values = np.maximum.accumulate(np.asarray(values))
        return float(np.interp(end, times, values) - np.interp(start, times, values))

    def _sample(self):
        while not self._stop.is_set():
            self.bytes = max(self.bytes, self._rss())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.bytes = self._rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.bytes = max(self.bytes, self._rss())
        return False

    @property
    def megabytes(self):
        return self.bytes / 2 ** 20


def environment():
    """What the numbers were measured on, including how busy the machine was."""
    import resource

    import psutil
    import tensorflow as tf
    load = os.getloadavg()
    return {
        "python": platform.python_version(), "tensorflow": tf.__version__,
        "platform": platform.platform(), "processor": platform.processor(),
        "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_total_gb": round(psutil.virtual_memory().total / 2 ** 30, 1),
        "load_average_1_5_15": [round(x, 2) for x in load],
        "load_average_at_start": [round(x, 2) for x in _START["load"]],
        "other_processes_cpu_share": _other_cpu_share(),
        "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _other_cpu_share():
    """Share of the machine's CPU capacity used by other processes since this script started
    (0 = idle machine apart from us, 1 = every core busy with something else): contention."""
    (t0, busy0, mine0), (t1, busy1, mine1) = _START["cpu"], _cpu_snapshot()
    if busy0 is None or busy1 is None:
        return None
    return other_cpu_share(busy1 - busy0, mine1 - mine0, t1 - t0)


def other_cpu_share(machine_busy_s, own_cpu_s, wall_s):
    """Share of all cores that other processes used in a window of `wall_s` seconds in which the
    machine was busy `machine_busy_s` CPU seconds, `own_cpu_s` of them ours (None if unknown)."""
    if machine_busy_s is None or own_cpu_s is None or wall_s <= 0:
        return None
    capacity = wall_s * (os.cpu_count() or 1)
    return round(max(0.0, machine_busy_s - own_cpu_s) / capacity, 3)


# ----------------------------------------------------------------------------- output

def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def fmt(value, digits=1):
    """A table cell: numbers with thousands separators, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def table(headers, rows):
    """A plain-text table (first column left-aligned, the others right-aligned)."""
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths)))
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def target_check(measured, target, higher_is_better=True):
    """{target, measured, met} for the JSON."""
    if measured is None:
        return {"target": target, "measured": None, "met": None}
    met = measured >= target if higher_is_better else measured <= target
    return {"target": target, "measured": measured, "met": bool(met)}


def write_json(path, payload):
    """Write `payload` (sorted keys, indented) via a temporary file; returns the path."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


def run_script(name, parser, measure, render, argv=None):
    """A benchmark script's `main`: parse `argv`, measure, then `finish` with the rendered table."""
    args = parser.parse_args(argv)
    result = measure(args)
    return finish(name, args, result, render(result))


def finish(name, args, payload, text):
    """Print the table text, add the common fields, write the JSON; returns the payload."""
    payload = dict(payload)
    payload["benchmark"] = name
    payload["quick"] = bool(args.quick)
    payload["environment"] = environment()
    path = write_json(out_path(args, name), payload)
    print(text)
    print(f"\nwrote {path}")
    return payload
