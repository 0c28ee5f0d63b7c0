"""Model size: SavedModel bytes and parameter counts, dense network vs. what is shipped.

For the run's pushed SavedModel:
- bytes on disk: total, `saved_model.pb`, `variables/`, `assets/` (vocabulary files), and the
  gzip-compressed size of the variables (zeros of pruned connections compress);
- parameters by kind: embeddings, MLP biases, task heads, the shared (unmasked) MLP kernels and the
  per-task masked MLP kernels, each as stored and as non-zero values;
- `dense`: the plain shared-bottom network (embeddings + one MLP + heads) - what a dense model
  needs; `shipped`: every value stored in the SavedModel; `shipped_nonzero`: its non-zeros;
- a dense export for comparison: the same trained network exported through `modules.export` with
  all-ones masks (same format, no pruning), its bytes measured the same way.
"""
import gzip
import os
import sys
import tempfile

import numpy as np

from benchmarks import common

NAME = "model_size"


def _parser():
    p = common.add_root(common.parser(NAME, __doc__.split("\n")[0]))
    p.add_argument("--model", help="SavedModel or serving directory (default: the run's pushed "
                   "model)")
    p.add_argument("--no-dense-export", action="store_true",
                   help="skip exporting the all-ones-mask comparison model")
    return p


def dir_bytes(path):
    """{total, saved_model_pb, variables, assets, other} bytes under a SavedModel directory."""
    sizes = {"total": 0, "saved_model_pb": 0, "variables": 0, "assets": 0, "other": 0}
    for folder, _, files in os.walk(path):
        rel = os.path.relpath(folder, path).split(os.sep)[0]
        for name in files:
            size = os.path.getsize(os.path.join(folder, name))
            sizes["total"] += size
            if rel == "." and name == "saved_model.pb":
                sizes["saved_model_pb"] += size
            elif rel in ("variables", "assets"):
                sizes[rel] += size
            else:
                sizes["other"] += size
    data = [os.path.join(path, "variables", n) for n in os.listdir(os.path.join(path, "variables"))
            if n.startswith("variables.data")]
    sizes["variables_gzip"] = sum(len(gzip.compress(open(f, "rb").read(), 6)) for f in data)
    return sizes


def parameters(model_path, embedding_dim):
    """Parameter counts by kind in a SavedModel written by `modules.export`.

    Loaded variables keep only their last name part, so a linear-term table is told from an
    embedding table by its width (1 instead of `embedding_dim`).
    """
    import tensorflow as tf
    loaded = tf.saved_model.load(model_path)
    kinds = {}

    def add(kind, value):
        entry = kinds.setdefault(kind, {"stored": 0, "nonzero": 0, "tensors": 0})
        entry["stored"] += int(value.size)
        entry["nonzero"] += int(np.count_nonzero(value))
        entry["tensors"] += 1

    # The MTL network, then (prefixed "served_") the ticket networks that serve tasks where MTL
    # lost to them (`mtl.negative_transfer: serve_ticket`).
    for prefix, variables in (("", loaded.network_variables),
                              ("served_", getattr(loaded, "served_variables", []))):
        for var in variables:
            value, name = var.numpy(), var.name
            if "embeddings" in name and value.shape[-1] == 1 != embedding_dim:
                kind = "linear_terms"             # the per-task linear term: one weight per id
            elif "embeddings" in name:
                kind = "embeddings"
            elif name.startswith("mlp_") and "kernel" in name:
                kind = "shared_mlp_kernels"       # unmasked kernels; serving uses task_kernels
            elif name.startswith("mlp_"):
                kind = "mlp_biases"
            else:
                kind = "heads"
            add(prefix + kind, value)
    for task, kernels in sorted(loaded.task_kernels.items()):
        for var in kernels:
            add(f"{task}_masked_kernels", var.numpy())
    stored = sum(k["stored"] for k in kinds.values())
    nonzero = sum(k["nonzero"] for k in kinds.values())
    dense = sum(kinds[k]["stored"] for k in ("embeddings", "shared_mlp_kernels", "mlp_biases",
                                             "heads", "linear_terms") if k in kinds)
    unused = [kinds.get(k, {}) for k in ("shared_mlp_kernels", "served_shared_mlp_kernels")]
    used = stored - sum(k.get("stored", 0) for k in unused)
    used_nonzero = nonzero - sum(k.get("nonzero", 0) for k in unused)
    return {"by_kind": kinds, "dense": dense, "shipped": stored, "shipped_nonzero": nonzero,
            "used_by_serving": used, "used_by_serving_nonzero": used_nonzero,
            "task_mlp_density": {
                task: kinds[f"{task}_masked_kernels"]["nonzero"] /
                kinds[f"{task}_masked_kernels"]["stored"]
                for task in sorted(loaded.task_kernels)}}, loaded


def dense_export(run, config, loaded, out_dir):
    """Export the same trained network with all-ones masks; returns the SavedModel path."""
    import tensorflow_transform as tft

    from modules import export
    from modules import inputs as inputs_lib
    from modules import pruning
    tft_output = tft.TFTransformOutput(run.transform_graph)
    network = inputs_lib.network_for(inputs_lib.vocab_sizes(tft_output, config), config,
                                     config.spec.task_names())
    for var, value in zip(network.variables, loaded.network_variables):
        var.assign(value.numpy())
    ones = pruning.ones_like([k.numpy() for k in network.prunable_weights()])
    return export.export(network, {t: ones for t in config.spec.task_names()}, tft_output,
                         os.path.join(out_dir, "dense-export"), config.spec)


def measure(args):
    config = common.load_config(args)
    run = common.ensure_run(args, config)
    from pipeline import serving
    model = serving.latest_version(args.model) if args.model else run.serving_model
    params, loaded = parameters(model, config.model.embedding_dim)
    result = {"model": os.path.abspath(model), "run_root": run.root,
              "bytes": dir_bytes(model), "parameters": params,
              "vocab_files": len(os.listdir(os.path.join(model, "assets")))
              if os.path.isdir(os.path.join(model, "assets")) else 0}
    if not args.no_dense_export:
        with tempfile.TemporaryDirectory(dir=args.work if os.path.isdir(args.work) else None) \
                as tmp:
            path = dense_export(run, config, loaded, tmp)
            result["dense_export_bytes"] = dir_bytes(path)
            dense_params, _ = parameters(path, config.model.embedding_dim)
            result["dense_export_parameters"] = {k: dense_params[k] for k in
                                                 ("shipped", "shipped_nonzero")}
    result["targets"] = {"model_megabytes": common.target_check(
        result["bytes"]["total"] / 1e6, common.TARGETS["model_megabytes"],
        higher_is_better=False)}
    return result


def render(result):
    b, p = result["bytes"], result["parameters"]
    dense_b = result.get("dense_export_bytes")

    def mb(x):
        return common.fmt(x / 1e6, 2) if x is not None else "-"
    rows = [[key, mb(b[key]), mb(dense_b[key]) if dense_b else "-"]
            for key in ("total", "saved_model_pb", "variables", "variables_gzip", "assets")]
    text = [f"Model size of {result['model']}",
            common.table(["bytes (MB)", "shipped (LT4REC)", "dense export (all-ones masks)"],
                         rows), ""]
    prow = [[kind, common.fmt(v["stored"]), common.fmt(v["nonzero"])]
            for kind, v in sorted(p["by_kind"].items())]
    prow += [["dense shared-bottom network", common.fmt(p["dense"]), "-"],
             ["shipped (all stored values)", common.fmt(p["shipped"]),
              common.fmt(p["shipped_nonzero"])],
             ["used by serving_default", common.fmt(p["used_by_serving"]),
              common.fmt(p["used_by_serving_nonzero"])]]
    text.append(common.table(["parameters", "stored", "non-zero"], prow))
    check = result["targets"]["model_megabytes"]
    text.append(f"target: exported model <= {check['target']:g} MB: measured "
                f"{check['measured']:.2f} MB -> {'met' if check['met'] else 'MISSED'}")
    return "\n".join(text)


def main(argv=None):
    """Measure, print the table and write the JSON; returns the JSON payload."""
    return common.run_script(NAME, _parser(), measure, render, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
