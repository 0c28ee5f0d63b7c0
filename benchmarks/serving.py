"""Serving latency and throughput of the pushed SavedModel through `serving_default`.

The model is loaded the way TF Serving loads it (`pipeline.serving.ServingSession`: SavedModel into
a session by tag, SignatureDef lookup) and fed PredictRequests carrying serialized raw
tf.Examples of the run's eval split (what a client sends):

- batch 1: p50/p90/p99 latency of `ServingSession.predict` (tensor proto -> session.run ->
  response protos: TF Serving's handler minus the RPC), median over `--repeats` blocks;
- batch 256: examples/s and per-request p50/p99 latency;
- stage breakdown: the same request through the `transform_features` signature (parsing + the
  Transform graph only) and a bare `session.run` of `serving_default` (no proto conversion), plus
  the full client round trip (`score`: building the request and decoding the response).

Model load time (session creation + restore) is reported too. No network hop is included.
"""
import os
import sys
import time

import numpy as np

from benchmarks import common

NAME = "serving"


def _parser():
    p = common.add_root(common.parser(NAME, __doc__.split("\n")[0]))
    p.add_argument("--model", help="SavedModel or serving directory (default: the run's pushed "
                   "model)")
    p.add_argument("--repeats", type=int, help="timed blocks (default 5; quick 2)")
    p.add_argument("--calls", type=int, help="batch-1 requests per block (default 2000; quick 50)")
    p.add_argument("--batches", type=int, help="batch-256 requests per block (default 40; quick 3)")
    p.add_argument("--batch-size", type=int, default=256, help="throughput batch size")
    return p


def raw_examples(run, count):
    """`count` serialized raw tf.Examples of the run's eval split (cycled if it has fewer)."""
    import tensorflow as tf

    from modules import data
    files = data.split_files(run.raw_examples, "eval")
    records = [r.numpy() for r in
               tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)]
    if not records:
        raise ValueError(f"no eval examples under {run.raw_examples}")
    return [records[i % len(records)] for i in range(count)]


def _latencies_ms(call, items):
    out = []
    for item in items:
        start = time.perf_counter()
        call(item)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _stats(latencies_ms):
    return {"p50_ms": common.percentile(latencies_ms, 50),
            "p90_ms": common.percentile(latencies_ms, 90),
            "p99_ms": common.percentile(latencies_ms, 99),
            "mean_ms": float(np.mean(latencies_ms)), "calls": len(latencies_ms)}


def _blocks(call, items, repeats, warmup=20):
    """Per-block latency stats; the reported value of each stat is its median over blocks."""
    for item in items[:warmup]:
        call(item)
    blocks = [_stats(_latencies_ms(call, items)) for _ in range(repeats)]
    summary = {key: common.median([b[key] for b in blocks])
               for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms")}
    summary["blocks"] = blocks
    return summary


def predict_p50_ms(model_dir, examples, batch_size=256, calls=200, batches=20):
    """{"batch_1", "batch_<batch_size>"}: median ms of a PredictRequest to `serving_default`
    of the SavedModel at `model_dir` (loaded as TF Serving loads it), on `examples`."""
    from pipeline import serving
    session = serving.ServingSession(model_dir)
    singles = [serving.make_request([e]) for e in examples[:calls]]
    big = [serving.make_request([examples[(i * batch_size + j) % len(examples)]
                                 for j in range(batch_size)]) for i in range(batches)]
    return {"batch_1": _blocks(session.predict, singles, 1)["p50_ms"],
            f"batch_{batch_size}": _blocks(session.predict, big, 1, warmup=3)["p50_ms"]}


def measure(args):
    from pipeline import serving
    config = common.load_config(args)
    repeats = args.repeats or (2 if args.quick else 5)
    calls = args.calls or (50 if args.quick else 2000)
    batches = args.batches or (3 if args.quick else 40)
    batch_size = args.batch_size
    run = common.ensure_run(args, config)
    model = args.model or run.serving_model
    examples = raw_examples(run, max(calls, batch_size * min(batches, 8)))

    with common.PeakMemory() as peak:
        start = time.perf_counter()
        session = serving.ServingSession(model)
        load_s = time.perf_counter() - start
        signature = session.signatures["serving_default"]
        input_name = signature.inputs["examples"].name
        fetches = [signature.outputs[k].name for k in sorted(signature.outputs)]

        def bare_run(batch):
            session.session.run(fetches, feed_dict={input_name: batch})

        singles = [serving.make_request([e]) for e in examples[:calls]]
        single_arrays = [np.array([e], dtype=object) for e in examples[:calls]]
        transform_singles = [serving.make_request([e], signature="transform_features")
                             for e in examples[:calls]]
        common.log(f"batch 1: {repeats} blocks of {calls} requests")
        batch1 = _blocks(session.predict, singles, repeats)
        batch1_transform = _blocks(session.predict, transform_singles, max(1, repeats // 2))
        batch1_bare = _blocks(bare_run, single_arrays, max(1, repeats // 2))
        batch1_client = _blocks(lambda e: session.score([e]), examples[:calls],
                                max(1, repeats // 2))

        groups = [examples[i * batch_size:(i + 1) * batch_size]
                  for i in range(len(examples) // batch_size)]
        big = [serving.make_request(groups[i % len(groups)]) for i in range(batches)]
        big_transform = [serving.make_request(groups[i % len(groups)],
                                              signature="transform_features")
                         for i in range(batches)]
        big_bare = [np.array(groups[i % len(groups)], dtype=object) for i in range(batches)]
        common.log(f"batch {batch_size}: {repeats} blocks of {batches} requests")
        batched = _blocks(session.predict, big, repeats, warmup=3)
        batched_transform = _blocks(session.predict, big_transform, max(1, repeats // 2),
                                    warmup=3)
        batched_bare = _blocks(bare_run, big_bare, max(1, repeats // 2), warmup=3)

    def with_rate(stats):
        """Add examples/s: batch size over each block's mean latency, median over blocks."""
        blocks = [batch_size / b["mean_ms"] * 1000 for b in stats["blocks"]]
        return dict(stats, examples_per_s=common.median(blocks), examples_per_s_blocks=blocks)

    result_rate = with_rate(batched)["examples_per_s"]
    result = {
        "model": os.path.abspath(model), "run_root": run.root, "load_s": load_s,
        "peak_rss_mb": peak.megabytes, "repeats": repeats, "calls_per_block": calls,
        "batches_per_block": batches, "batch_size": batch_size,
        "batch_1": {"predict": batch1, "transform_features_only": batch1_transform,
                    "session_run_only": batch1_bare, "client_round_trip": batch1_client},
        "batch_n": {"predict": with_rate(batched),
                    "transform_features_only": with_rate(batched_transform),
                    "session_run_only": with_rate(batched_bare)},
        "targets": {
            "serving_p50_ms_at_batch_1": common.target_check(
                batch1["p50_ms"], common.TARGETS["serving_p50_ms_at_batch_1"],
                higher_is_better=False),
            "serving_examples_per_s_at_batch_256": common.target_check(
                result_rate if batch_size == 256 else None,
                common.TARGETS["serving_examples_per_s_at_batch_256"]),
        },
    }
    return result


def render(result):
    one, many = result["batch_1"], result["batch_n"]
    n = result["batch_size"]
    rows = []
    for key, label in (("predict", "serving_default via PredictRequest"),
                       ("transform_features_only", "  parse + Transform only"),
                       ("session_run_only", "  bare session.run (no protos)"),
                       ("client_round_trip", "  client: build request + decode")):
        b1 = one[key]
        bn = many.get(key)
        rows.append([label, common.fmt(b1["p50_ms"], 2), common.fmt(b1["p99_ms"], 2),
                     common.fmt(bn["p50_ms"], 1) if bn else "-",
                     common.fmt(bn["examples_per_s"], 0) if bn else "-"])
    text = [f"Serving {result['model']}",
            f"(load {result['load_s']:.1f} s, peak RSS {result['peak_rss_mb']:,.0f} MB; medians "
            f"of {result['repeats']} blocks of {result['calls_per_block']} batch-1 / "
            f"{result['batches_per_block']} batch-{n} requests)",
            common.table(["path", "b1 p50 ms", "b1 p99 ms", f"b{n} p50 ms", f"b{n} ex/s"], rows)]
    for key, check in result["targets"].items():
        if check["measured"] is not None:
            text.append(f"target {key}: {check['target']:,g}, measured {check['measured']:,.2f} "
                        f"-> {'met' if check['met'] else 'MISSED'}")
    return "\n".join(text)


def main(argv=None):
    """Measure, print the table and write the JSON; returns the JSON payload."""
    return common.run_script(NAME, _parser(), measure, render, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
