"""An HTML quality report (with PNG plots) of a pipeline run: `lt4rec report --root DIR`.

`render(root, out_dir)` reads the latest successful outputs of the run under `root` from ML
Metadata and writes `out_dir/index.html` (default `<root>/report/`) with:

- the run summary (AUCs of ticket search round 0, the chosen tickets and the masked MTL model,
  blessing, pushed model);
- pruning curves per task (eval metric vs. density per round, chosen round circled) and the
  per-layer density of every round (`ticket_report.json`);
- mask density per layer of each task's chosen mask (`modules.masks.load`);
- overlap between the task masks: an N x N matrix of pairwise Jaccard indices and shared counts;
  with two tasks also per layer first-only / shared / second-only / pruned-by-both fractions and
  a map of every layer's connections;
- the AUC comparison table (every arm of the benchmark; mean ± std over seeds) from
  the quality JSON of `python -m benchmarks.quality`, when given (or at `<root>/quality.json`);
- TFMA metrics per slice (`tfma.load_eval_result`): per task its rows, AUC and calibration, per
  product and reference score its AUC, and the validation (blessing) outcome.

The outputs (tasks, products, reference scores) are those the run's training report lists.

Every number shown is read from the run's artifacts (or the quality JSON); nothing is recomputed
except mask statistics, which are derived from the mask arrays themselves.
"""
import argparse
import datetime
import html
import json
import os
import sys

import numpy as np

from modules import plots

REPORT_DIR = "report"
QUALITY_FILE = "quality.json"


class ReportError(RuntimeError):
    """The run root holds no finished run to report on."""


# ----------------------------------------------------------------------------- reading the run

def _pipeline_name(layout, default):
    """The pipeline name recorded in MLMD (the only one), else `default`."""
    from ml_metadata import metadata_store
    store = metadata_store.MetadataStore(layout.connection())
    names = [c.name for c in store.get_contexts_by_type("pipeline")]
    return names[0] if len(names) == 1 else default


def _uri(outputs, node, key):
    artifacts = outputs.get(node, {}).get(key, [])
    return artifacts[0].uri if artifacts else None


def _read_json(path):
    if not path or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def collect(root, pipeline_name=None):
    """Everything the report shows, read from the run under `root`."""
    from pipeline import local_runner, mlmd
    from modules.config import Config
    layout = local_runner.RunLayout(root)
    if not os.path.exists(layout.metadata_path):
        raise ReportError(f"no pipeline run under {root} (no {layout.metadata_path})")
    name = pipeline_name or _pipeline_name(layout, Config().pipeline_name)
    outputs = mlmd.latest_outputs(layout.connection(), name)
    masks_uri = _uri(outputs, "TicketSearch", "masks")
    model_run = _uri(outputs, "MTLTrainer", "model_run")
    if not masks_uri and not model_run:
        raise ReportError(f"the run under {root} has no finished TicketSearch or MTLTrainer")
    from modules import masks as masks_lib
    run = {       # no TicketSearch: an architecture without tickets (`mtl.architecture`)
        "root": layout.root, "pipeline_name": name,
        "ticket_report": _read_json(masks_uri and os.path.join(masks_uri, "ticket_report.json")),
        "masks_uri": masks_uri, "masks": masks_lib.load(masks_uri) if masks_uri else {},
        "training_report": _read_json(model_run and os.path.join(model_run,
                                                                 "training_report.json")),
        "evaluation_uri": _uri(outputs, "Evaluator", "evaluation"),
        "model_uri": _uri(outputs, "MTLTrainer", "model"),
    }
    pushed = outputs.get("AtomicPusher", {}).get("pushed_model", [])
    blessing = outputs.get("Evaluator", {}).get("blessing", [])
    run["pushed"] = (pushed[0].custom_properties["pushed_destination"].string_value
                     if pushed and "pushed_destination" in pushed[0].custom_properties
                     and pushed[0].custom_properties["pushed"].int_value else None)
    run["blessed"] = (bool(blessing[0].custom_properties["blessed"].int_value)
                      if blessing and "blessed" in blessing[0].custom_properties else None)
    run["tfma"] = tfma_slices(run["evaluation_uri"]) if run["evaluation_uri"] else None
    examples = outputs.get("ImportExampleGen", {}).get("examples", [])
    found = examples[0].custom_properties if examples else {}
    anomalies = _uri(outputs, "StrictExampleValidator", "anomalies")
    run["data"] = {
        "rows_read": found["rows_read"].int_value if "rows_read" in found else None,
        "dropped_rows": json.loads(found["dropped_rows"].string_value)
        if "dropped_rows" in found else None,
        "checks": _read_json(anomalies and os.path.join(anomalies, "data_checks.json")) or {}}
    run["outputs"] = (run["training_report"] or {}).get("outputs") or {
        "tasks": sorted(run["masks"]), "products": {}, "reference_scores": {}}
    return run


def _metric_value(value):
    """A float from TFMA's JSON-like metric value, or None for non-scalar metrics."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        for key in ("doubleValue", "value"):
            if key in value and isinstance(value[key], (int, float)):
                return float(value[key])
        if "boundedValue" in value:
            return _metric_value(value["boundedValue"])
    return None


def tfma_slices(evaluation_uri):
    """{"slices": [{slice, metrics: {output: {metric: value}}}], "validation_ok": bool}."""
    import tensorflow_model_analysis as tfma
    result = tfma.load_eval_result(evaluation_uri)
    slices = []
    for slice_key, by_output in result.slicing_metrics:
        metrics = {}
        for output, by_sub_key in by_output.items():
            for values in by_sub_key.values():
                for metric, value in values.items():
                    number = _metric_value(value)
                    if number is not None:
                        metrics.setdefault(output or "", {})[metric] = number
        label = ", ".join(f"{k} = {v}" for k, v in slice_key) if slice_key else "Overall"
        slices.append({"slice": label, "overall": not slice_key, "metrics": metrics})
    slices.sort(key=lambda s: (not s["overall"], -_count(s), s["slice"]))
    try:
        validation_ok = bool(tfma.load_validation_result(evaluation_uri).validation_ok)
    except Exception:  # pylint: disable=broad-except  (older results have no validation file)
        validation_ok = None
    return {"slices": slices, "validation_ok": validation_ok}


def _count(slice_entry):
    """The slice's rows: the largest example count of its outputs (a task on every row)."""
    return max([m.get("example_count", 0.0) for m in slice_entry["metrics"].values()],
               default=0.0)


# ----------------------------------------------------------------------------- mask statistics

def mask_stats(masks, tasks):
    """Per layer: each task's density and, with two tasks, their overlap categories (fractions
    of total); overall: densities and `pruning.overlap` of every task."""
    from modules import pruning
    tasks = [t for t in tasks if t in masks]
    layers = []
    for i in range(len(masks[tasks[0]])):
        entry = {"layer": i, "shape": list(masks[tasks[0]][i].shape),
                 "total": int(masks[tasks[0]][i].size),
                 "density": {t: float(masks[t][i].mean()) for t in tasks}}
        if len(tasks) == 2:
            a, b = masks[tasks[0]][i], masks[tasks[1]][i]
            entry["categories"] = {
                f"{tasks[0]} only": float(np.mean(a & ~b)), "shared": float(np.mean(a & b)),
                f"{tasks[1]} only": float(np.mean(~a & b)), "pruned by both": float(np.mean(~a & ~b))}
            entry["jaccard"] = float(np.sum(a & b) / max(np.sum(a | b), 1))
        layers.append(entry)
    overall = {"density": {t: pruning.density(masks[t]) for t in tasks}}
    if len(tasks) >= 2:
        stats = pruning.overlap({t: masks[t] for t in tasks})
        overall.update({key: stats[key] for key in ("jaccard", "shared", "union", "total",
                                                    "pairwise")})
    return {"tasks": tasks, "layers": layers, "overall": overall}


# ----------------------------------------------------------------------------- plots

def _save(fig, out_dir, name):
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name))
    plots.plt.close(fig)
    return name


def plot_pruning_curves(ticket_report, out_dir):
    plt = plots.plt
    tasks = sorted(ticket_report["tasks"])
    fig, axes = plt.subplots(1, 1 + len(tasks), figsize=(5 + 4 * len(tasks), 4), dpi=100)
    plots.draw_pruning_curves(axes[0], ticket_report)
    for ax, task in zip(axes[1:], tasks):
        rounds = ticket_report["tasks"][task]["rounds"]
        layers = len(rounds[0]["layer_density"])
        for layer in range(layers):
            ax.plot([r["round"] for r in rounds], [r["layer_density"][layer] for r in rounds],
                    marker=".", label=f"layer {layer}")
        ax.plot([r["round"] for r in rounds], [r["density"] for r in rounds], "k--",
                label="overall")
        ax.set_xlabel("round")
        ax.set_ylabel("density")
        ax.set_title(f"{task}: per-layer density by round")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out_dir, "pruning_curves.png")


def plot_layer_density(stats, out_dir):
    plt = plots.plt
    layers = stats["layers"]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    width = 0.8 / len(stats["tasks"])
    x = np.arange(len(layers))
    colors = plots.task_colors(stats["tasks"])
    for i, task in enumerate(stats["tasks"]):
        values = [layer["density"][task] for layer in layers]
        bars = ax.bar(x + (i - (len(stats["tasks"]) - 1) / 2) * width, values, width,
                      label=task, color=colors[task])
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(x, [f"layer {l['layer']}\n{l['shape'][0]}x{l['shape'][1]}" for l in layers])
    ax.set_ylabel("fraction of connections kept")
    ax.set_ylim(0, 1.05)
    ax.set_title("Chosen mask density per layer")
    ax.legend()
    return _save(fig, out_dir, "mask_density.png")


def plot_overlap_matrix(stats, out_dir):
    """Heatmap of the tasks' pairwise Jaccard indices, each cell also giving the shared count."""
    plt = plots.plt
    tasks, pairwise = stats["tasks"], stats["overall"]["pairwise"]
    size = 1.6 + 1.1 * len(tasks)
    fig, ax = plt.subplots(figsize=(size + 1.2, size), dpi=100)
    image = ax.imshow(np.array(pairwise["jaccard"]), cmap="Purples", vmin=0, vmax=1)
    for i in range(len(tasks)):
        for j in range(len(tasks)):
            value = pairwise["jaccard"][i][j]
            ax.text(j, i, f"{value:.2f}\n{pairwise['shared'][i][j]:,}", ha="center",
                    va="center", fontsize=8, color="white" if value > 0.6 else "black")
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_yticks(range(len(tasks)), tasks)
    ax.set_title("Task masks: pairwise Jaccard\n(and connections both keep)", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _save(fig, out_dir, "mask_overlap_matrix.png")


def plot_overlap(stats, out_dir):
    plt = plots.plt
    layers = stats["layers"]
    categories = list(layers[0]["categories"])
    first, second = (plots.task_colors(stats["tasks"])[t] for t in stats["tasks"])
    colors = [first, plots.SHARED_COLOR, second, "#dddddd"]
    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=100)
    bottom = np.zeros(len(layers))
    x = np.arange(len(layers))
    for category, color in zip(categories, colors):
        values = np.array([layer["categories"][category] for layer in layers])
        ax.bar(x, values, 0.6, bottom=bottom, label=category, color=color)
        bottom += values
    for i, layer in enumerate(layers):
        ax.text(i, 1.02, f"J={layer['jaccard']:.2f}", ha="center", fontsize=8)
    ax.set_xticks(x, [f"layer {l['layer']}" for l in layers])
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("fraction of connections")
    ax.set_title("Overlap of the task masks (J = Jaccard)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, out_dir, "mask_overlap.png")


def field_density(masks, tasks, fields):
    """Density of the first MLP layer's rows per input field (the spec's, in field order: the
    ticket report's `fields`), per task; None without fields or if the layer does not fit them.

    The MLP input is [flattened field embeddings (F x dim), flattened F x F interactions]
    (`modules.model`); a field's embedding rows and its interaction row are grouped.
    """
    n = len(fields or [])
    if not n:
        return None
    rows = masks[tasks[0]][0].shape[0]
    dim, rest = divmod(rows - n * n, n)
    if rest or dim <= 0:
        return None
    out = {"fields": fields, "embedding": {}, "interaction": {}}
    for task in tasks:
        layer0 = masks[task][0]
        out["embedding"][task] = [float(layer0[i * dim:(i + 1) * dim].mean()) for i in range(n)]
        start = n * dim
        out["interaction"][task] = [float(layer0[start + i * n:start + (i + 1) * n].mean())
                                    for i in range(n)]
    return out


def plot_field_density(density, tasks, out_dir):
    plt = plots.plt
    fields = density["fields"]
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.5), dpi=100, sharex=True)
    x = np.arange(len(fields))
    width = 0.8 / len(tasks)
    colors = plots.task_colors(tasks)
    for ax, part in zip(axes, ("embedding", "interaction")):
        for i, task in enumerate(tasks):
            ax.bar(x + (i - (len(tasks) - 1) / 2) * width, density[part][task], width,
                   label=task, color=colors[task])
        ax.set_ylabel("kept fraction")
        ax.set_title(f"layer 0 rows fed by each field's {part}"
                     + (" (its row of the F x F matrix)" if part == "interaction" else ""),
                     fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[1].set_xticks(x, [f.replace("FEA_", "") for f in fields], rotation=60, fontsize=7)
    return _save(fig, out_dir, "field_density.png")


def plot_mask_maps(masks, tasks, out_dir):
    """Every layer's connections coloured by which of two tasks keeps them."""
    plt = plots.plt
    from matplotlib.colors import ListedColormap
    a_masks, b_masks = masks[tasks[0]], masks[tasks[1]]
    fig, axes = plt.subplots(1, len(a_masks), figsize=(4 * len(a_masks), 4), dpi=100)
    axes = np.atleast_1d(axes)
    colors = plots.task_colors(tasks)
    cmap = ListedColormap(["#ffffff", colors[tasks[0]], colors[tasks[1]], plots.SHARED_COLOR])
    for i, (ax, a, b) in enumerate(zip(axes, a_masks, b_masks)):
        codes = a.astype(int) + 2 * b.astype(int)      # 0 none, 1 a only, 2 b only, 3 shared
        ax.imshow(codes.T, cmap=cmap, vmin=0, vmax=3, interpolation="nearest", aspect="auto")
        ax.set_title(f"layer {i} ({a.shape[0]} in x {a.shape[1]} out)", fontsize=9)
        ax.set_xlabel("input unit")
        ax.set_ylabel("output unit")
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in (1, 3, 2)]
    fig.legend(handles, [f"{tasks[0]} only", "shared", f"{tasks[1]} only"], loc="upper right",
               fontsize=8)
    return _save(fig, out_dir, "mask_maps.png")


def _arms(quality):
    """(arm names in the benchmark's order, {arm: label}) of a quality JSON."""
    return (quality.get("arm_order") or sorted(quality["arms"]),
            quality.get("arm_labels") or {})


def plot_quality(quality, out_dir):
    plt = plots.plt
    arms, labels = _arms(quality)
    metrics = quality["metrics"]
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=100)
    width = 0.8 / len(arms)
    x = np.arange(len(metrics))
    lows = []
    for i, arm in enumerate(arms):
        means = [quality["arms"][arm][m]["mean"] for m in metrics]
        stds = [quality["arms"][arm][m]["std"] for m in metrics]
        lows += [m - s for m, s in zip(means, stds)]
        ax.bar(x + (i - (len(arms) - 1) / 2) * width, means, width, yerr=stds, capsize=3,
               label=labels.get(arm, arm))
    ax.set_xticks(x, [f"{m.upper()} AUC" for m in metrics])
    ax.set_ylim(max(0.0, min(lows) - 0.05), 1.0)
    ax.set_ylabel("eval AUC (mean ± std)")
    ax.set_title(f"Model comparison over {len(quality.get('seeds', []))} seeds")
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "auc_comparison.png")


def plot_slices(tfma_result, tasks, out_dir):
    plt = plots.plt
    slices = [s for s in tfma_result["slices"] if not s["overall"]]
    overall = next((s for s in tfma_result["slices"] if s["overall"]), None)
    if not slices:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(slices) + 2), 4), dpi=100)
    x = np.arange(len(slices))
    colors, width = plots.task_colors(tasks), 0.8 / len(tasks)
    for i, task in enumerate(tasks):
        values = [s["metrics"].get(task, {}).get("auc", np.nan) for s in slices]
        ax.bar(x + (i - (len(tasks) - 1) / 2) * width, values, width, label=f"{task} AUC",
               color=colors[task])
        if overall and "auc" in overall["metrics"].get(task, {}):
            ax.axhline(overall["metrics"][task]["auc"], color=colors[task],
                       linestyle="--", linewidth=1)
    ax.set_xticks(x, [s["slice"].split(" = ")[-1] + f"\nn={int(_count(s))}" for s in slices],
                  fontsize=7)
    ax.set_ylim(0.4, 1.0)
    ax.set_ylabel("AUC (dashed: overall)")
    ax.set_title("TFMA: AUC per slice (" + slices[0]["slice"].split(" = ")[0] + ")")
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "tfma_slices.png")


# ----------------------------------------------------------------------------- HTML

def _f(value, digits=4):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if float(value).is_integer() and abs(value) >= 1 and digits == 0:
            return f"{int(value):,}"
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _table(headers, rows, cls=""):
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(name, alt):
    return f'<p><img src="{html.escape(name)}" alt="{html.escape(alt)}"></p>' if name else ""


def _summary_section(run):
    ticket = run["ticket_report"] or {"tasks": {}}
    training = run["training_report"] or {}
    eval_auc = training.get("eval_auc", {})
    validation_auc = training.get("validation_auc", {})
    outputs = run["outputs"]
    rows = []
    for task in outputs["tasks"]:
        t = ticket["tasks"].get(task) or dict.fromkeys(
            ("dense_metric", "dense_eval_metric", "chosen_metric", "chosen_eval_metric",
             "chosen_density", "chosen_round"))
        rows.append([task.upper()] + [f"{_f(v)} / {_f(e)}" for v, e in (
            (t["dense_metric"], t["dense_eval_metric"]),
            (t["chosen_metric"], t["chosen_eval_metric"]),
            (validation_auc.get(task), eval_auc.get(task)))]
            + [_f(t["chosen_density"]), _f(t["chosen_round"]),
               _f(training.get("epochs_trained", {}).get(task)),
               _f(training.get("eval_calibration", {}).get(task))])
    parts = ["<h2>Run summary</h2>",
             _table(["task", "AUC dense round 0 (val / eval)", "AUC chosen ticket (val / eval)",
                     "AUC MTL (val / eval)", "ticket density", "chosen round",
                     "MTL epochs", "MTL calibration (eval)"], rows)]
    facts = [(f"{name.upper()} AUC (MTL; {' × '.join(tasks)})", _f(eval_auc.get(name)))
             for name, tasks in outputs["products"].items()]
    facts += [(f"{name} AUC (scored like {task.upper()})", _f(training.get(f"{name}_auc")))
              for name, task in outputs["reference_scores"].items()]
    facts += [("train / validation / eval rows", f"{_f(training.get('train_rows'))} / "
                                                f"{_f(training.get('validation_rows'))} / "
                                                f"{_f(training.get('eval_rows'))}"),
             ("MTL steps", _f(training.get("steps"))),
             ("architecture", _f(training.get("architecture"))),
             ("blessed", _f(run["blessed"])),
             ("pushed model", _f(run["pushed"]))]
    parts.append("<ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {v}</li>" for k, v in facts)
                 + "</ul>")
    parts.append(_transfer_section(training))
    parts.append('<p class="note">Validation AUCs chose the ticket rounds and stopped training; '
                 'eval AUCs are reported and gated only. Each task\'s AUC is over its rows '
                 '(its <code>rows</code> in the spec; all rows when it has none), a product\'s '
                 'over its first task\'s rows, scored by the product of its tasks\' '
                 'probabilities. Calibration: mean prediction / mean label on those rows.</p>')
    return "\n".join(parts)


def _data_section(data):
    """Rows ExampleGen read and dropped per reason, the validator's warnings, drift and skew."""
    dropped = data["dropped_rows"] or {}
    checks = data["checks"]
    parts = ["<h2>Data checks</h2>",
             f"<p>Rows read: {_f(data['rows_read'])}; dropped for failing the schema's row "
             f"checks: {_f(sum(dropped.values()))}.</p>"]
    if dropped:
        parts.append(_table(["reason (first failing check)", "rows dropped"],
                            [[_f(reason), _f(rows)] for reason, rows in sorted(dropped.items())]))
    if checks.get("warnings"):
        parts.append("<p>Warnings (<code>checks.anomalies</code>):</p><ul>" + "".join(
            f"<li>{_f(line)}</li>" for line in checks["warnings"]) + "</ul>")
    rows = [[kind, _f(name), _f(d["measure"]), _f(d["value"]), _f(d["threshold"])]
            for kind in ("drift", "skew")
            for name, d in sorted(((checks.get(kind) or {}).get("features") or {}).items())]
    if rows:
        parts.append(_table(["check", "feature", "measure", "distance", "threshold"], rows))
    return "\n".join(parts)


def _transfer_section(training):
    """Per task: masked MTL against its own ticket (the negative-transfer guard), what serves it,
    and which weights early stopping kept."""
    guard = training.get("negative_transfer") or {}
    stopping = training.get("early_stopping") or {}
    rows = [[task.upper(), f"{_f(g['mtl_validation_auc'])} / {_f(g['mtl_eval_auc'])}",
             f"{_f(g['ticket_validation_auc'])} / {_f(g['ticket_eval_auc'])}",
             "yes" if g["mtl_lost"] else "no", html.escape(g["served_by"]),
             _f((stopping.get("task_best_check") or {}).get(task))]
            for task, g in sorted(guard.items())]
    if not rows:
        return ""
    return "\n".join([
        "<h3>Negative transfer: masked MTL against each task's own ticket</h3>",
        _table(["task", "masked MTL AUC (val / eval)", "own ticket alone (val / eval)",
                "MTL lost on validation", "served by", "task's best check"], rows),
        f'<p class="note">Early stopping kept {html.escape(str(stopping.get("kept", "-")))} '
        f'(shared weights from check {_f(stopping.get("best_check"))}). A task whose MTL '
        f'validation AUC is below its ticket\'s is flagged and, with '
        f'<code>mtl.negative_transfer: serve_ticket</code>, served from its ticket\'s weights; '
        f'the table above then shows the served model.</p>'])


def _pruning_section(run, out_dir):
    report = run["ticket_report"]
    if not report:
        return "<h2>Pruning curves</h2><p>No ticket_report.json.</p>" if run["masks_uri"] else ""
    parts = ["<h2>Pruning curves per task</h2>",
             f"<p>Keep per round {_f(report.get('keep_per_round'))}, rewind step "
             f"{_f(report.get('rewind_step'))}, seed {_f(report.get('seed'))}, "
             f"{_f(report.get('prunable_total'))} prunable MLP weights in layers "
             f"{html.escape(str(report.get('prunable_layers')))}.</p>",
             _img(plot_pruning_curves(report, out_dir), "pruning curves")]
    for task, result in sorted(report["tasks"].items()):
        rows = [[str(r["round"]) + (" (chosen)" if r["round"] == result["chosen_round"] else ""),
                 _f(r["density"]), _f(r["kept"]), _f(r["validation_auc"]), _f(r["eval_auc"]),
                 _f(r["epochs_trained"]), " / ".join(_f(d, 3) for d in r["layer_density"])]
                for r in result["rounds"]]
        parts.append(f"<h3>{task.upper()} ({html.escape(result['metric_name'])})</h3>")
        parts.append(_table(["round", "density", "kept", "validation AUC (selects)", "eval AUC",
                             "epochs", "layer densities"], rows))
    return "\n".join(parts)


def _mask_section(run, out_dir):
    if not run["masks"]:
        return ""
    stats = mask_stats(run["masks"], run["outputs"]["tasks"])
    tasks = stats["tasks"]
    parts = ["<h2>Mask density per layer</h2>", _img(plot_layer_density(stats, out_dir),
                                                      "mask density per layer")]
    rows = [[f"layer {l['layer']}", f"{l['shape'][0]}×{l['shape'][1]}", _f(l["total"])]
            + [_f(l["density"][t]) for t in tasks] for l in stats["layers"]]
    rows.append(["all", "", _f(sum(l["total"] for l in stats["layers"]))]
                + [_f(stats["overall"]["density"][t]) for t in tasks])
    parts.append(_table(["layer", "shape", "connections"] + [f"{t} density" for t in tasks],
                        rows))
    if len(tasks) >= 2:
        o = stats["overall"]
        parts += ["<h2>Overlap between task masks</h2>",
                  _img(plot_overlap_matrix(stats, out_dir), "pairwise mask overlap")]
        if len(tasks) == 2:
            parts += [_img(plot_overlap(stats, out_dir), "mask overlap"),
                      _img(plot_mask_maps(run["masks"], tasks, out_dir), "mask maps")]
            categories = list(stats["layers"][0]["categories"])
            rows = [[f"layer {l['layer']}"] + [_f(l["categories"][c]) for c in categories]
                    + [_f(l["jaccard"])] for l in stats["layers"]]
            rows.append(["all"] + ["" for _ in categories] + [_f(o["jaccard"])])
            parts.append(_table(["layer"] + [f"{c} (fraction)" for c in categories]
                                + ["Jaccard"], rows))
        parts.append(f"<p>Connections every task keeps: {_f(o['shared'])} of {_f(o['total'])} "
                     f"(kept by any: {_f(o['union'])}; Jaccard of all tasks "
                     f"{_f(o['jaccard'])}).</p>")
        density = field_density(run["masks"], tasks,
                                (run["ticket_report"] or {}).get("fields"))
        if density:
            parts += ["<h3>First layer: kept connections per input field</h3>",
                      _img(plot_field_density(density, tasks, out_dir), "field density")]
    return "\n".join(parts)


def _quality_section(quality, quality_path, out_dir):
    if not quality:
        return ("<h2>AUC comparison</h2><p>No quality JSON: run <code>python -m "
                "benchmarks.quality --root ROOT --out ROOT/quality.json</code> (or pass "
                "<code>--quality FILE</code>).</p>")
    metrics = quality["metrics"]
    arms, labels = _arms(quality)
    rows = [[html.escape(labels.get(a, a))]
            + [f"{_f(quality['arms'][a][m]['mean'])} ± {_f(quality['arms'][a][m]['std'])}"
               for m in metrics] for a in arms]
    parts = ["<h2>AUC comparison (same data and splits)</h2>",
             f"<p>Seeds {html.escape(str(quality.get('seeds')))}; "
             f"{_f(quality.get('train_rows'))} train / {_f(quality.get('eval_rows'))} eval rows; "
             f"source <code>{html.escape(quality_path)}</code> (run "
             f"<code>{html.escape(str(quality.get('run_root')))}</code>).</p>",
             _table(["model"] + [f"{m.upper()} AUC (mean ± std)" for m in metrics], rows),
             _img(plot_quality(quality, out_dir), "AUC comparison")]
    diffs = quality.get("differences", {})
    if diffs:
        rows = [[html.escape(k.replace("_", " "))]
                + [f"{v[m]['mean']:+.4f} ± {v[m]['std']:.4f} "
                   f"({v[m]['lt4rec_better_in']}/{v[m]['seeds']} seeds)" for m in metrics]
                for k, v in diffs.items()]
        parts.append("<h3>Paired per-seed differences</h3>")
        parts.append(_table(["difference"] + [m.upper() for m in metrics], rows))
    return "\n".join(parts)


def _tfma_section(tfma_result, outputs, out_dir):
    if not tfma_result:
        return "<h2>TFMA slices</h2><p>No Evaluator output.</p>"
    tasks = outputs["tasks"]
    columns = ([(t, metric, digits) for t in tasks
                for metric, digits in (("example_count", 0), ("auc", 4))]
               + [(p, "auc", 4) for p in outputs["products"]]
               + [(t, "calibration", 3) for t in tasks]
               + [(r, "auc", 4) for r in outputs["reference_scores"]])
    names = {"example_count": "rows", "auc": "AUC", "calibration": "calibration"}
    rows = []
    for s in tfma_result["slices"]:
        cells = [html.escape(s["slice"])]
        for output, metric, digits in columns:
            value = s["metrics"].get(output, {}).get(metric)
            cells.append(_f(int(value) if digits == 0 and value is not None else value, digits))
        rows.append(cells)
    served = set(tasks) | set(outputs["products"])
    headers = ["slice"] + [f"{output.upper() if output in served else output} {names[metric]}"
                           for output, metric, _ in columns]
    return "\n".join([
        "<h2>TFMA metrics per slice</h2>",
        f"<p>Validation (blessing thresholds) passed: {_f(tfma_result['validation_ok'])}. "
        "A task with a row subset is weighted by its rows column (its rows only).</p>",
        _img(plot_slices(tfma_result, tasks, out_dir), "TFMA slices"),
        _table(headers, rows, "slices")])


_CSS = """
body { font-family: sans-serif; margin: 2em; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; } .note { color: #666; font-size: 0.9em; }
"""


def render(root, out_dir=None, quality=None, pipeline_name=None):
    """Write `index.html` and its PNGs for the run under `root`; returns the index path.

    `quality`: path of a quality JSON (`python -m benchmarks.quality`); default
    `<root>/quality.json` when it exists.
    """
    run = collect(root, pipeline_name)
    out_dir = os.path.abspath(out_dir or os.path.join(run["root"], REPORT_DIR))
    os.makedirs(out_dir, exist_ok=True)
    quality_path = quality or os.path.join(run["root"], QUALITY_FILE)
    quality_data = _read_json(quality_path)
    if quality and quality_data is None:
        raise ReportError(f"quality file not found: {quality}")
    body = [f"<h1>LT4REC run report</h1>",
            f"<p>Run <code>{html.escape(run['root'])}</code> (pipeline "
            f"<code>{html.escape(run['pipeline_name'])}</code>), rendered "
            f"{datetime.datetime.now().isoformat(timespec='seconds')}.</p>",
            _summary_section(run), _data_section(run["data"]), _pruning_section(run, out_dir), _mask_section(run, out_dir),
            _quality_section(quality_data, quality_path, out_dir),
            _tfma_section(run["tfma"], run["outputs"], out_dir)]
    page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>LT4REC run report"
            f"</title><style>{_CSS}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")
    index = os.path.join(out_dir, "index.html")
    with open(index + ".tmp", "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(index + ".tmp", index)
    return index


def main(argv=None):
    """`lt4rec report --root DIR [--out DIR] [--quality FILE]`."""
    parser = argparse.ArgumentParser(prog="lt4rec report",
                                     description="render an HTML report of a pipeline run")
    parser.add_argument("--root", required=True, help="the run root (`lt4rec run --root`)")
    parser.add_argument("--out", help=f"output directory (default: <root>/{REPORT_DIR})")
    parser.add_argument("--quality", help="quality JSON of `python -m benchmarks.quality` "
                        f"(default: <root>/{QUALITY_FILE} if present)")
    args = parser.parse_args(argv)
    try:
        index = render(args.root, args.out, args.quality)
    except ReportError as error:
        print(f"lt4rec: {error}", file=sys.stderr)
        return 1
    print(f"report written to {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
