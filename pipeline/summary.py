"""The end-of-run summary: printed by `lt4rec run` and written to `<root>/summary.json`.

Keys: per task of the spec (LT4REC: `ctr`, `cvr`) the eval-split AUCs `dense_auc` (ticket search
round 0),
`ticket_auc` (chosen round) and `mtl_auc` (masked MTL model); `validation_auc` with the same three
on the validation split (what chose the round and stopped training); `epochs_trained` (per ticket
round and for MTL); `calibration` (MTL, mean prediction / mean label on eval); `density` (chosen
mask); `negative_transfer` (MTL's and the task's own ticket's validation and eval AUC, whether
MTL lost on validation and what serves the task: "mtl" or "ticket"); plus `<product>_auc` per
product (`ctcvr_auc`), `<reference>_auc` per reference score (`pctr_reference_auc`), `outputs`
(the tasks, products and reference scores, in order), `gates` (each gated output's AUC lower
bound and allowed regression, `Config.gate`), `overlap` (of the task masks: `shared` =
kept by every task, `union` = by any, `jaccard` = shared / union, `pairwise` N x N matrices),
`blessed`, `pushed_model` and where the artifacts are; for daily runs `span` (None without
spans), `warm_started_from` (the pushed model MTL started from, or None), `masks_reused` (whether
TicketSearch took a pushed model's masks instead of searching; None without TicketSearch) and
`masks_reuse` (from where, searched on which span, or why not); for the data checks
`rows_read` and `dropped_rows` (ExampleGen: {reason: rows} it dropped, `checks`) and
`data_warnings` (the validator's anomalies of the classes that warn), `data_drift` (the
previous span's number and each `checks.drift` feature's distance and threshold; None when not
checked) and `data_skew` (the same against `checks.serving_logs`). The `mtl_auc` and `validation_auc.mtl`
values are the exported model's (a task served from its ticket shows the ticket's).
"""
import json
import os

import tensorflow as tf

from components.split_example_gen import spans
from modules.config import ConfigError

# The summary's own keys: a task may not take one of their names (its entry is a key too).
KEYS = ("transformed_examples", "vocabularies", "ticket_search", "model", "evaluation",
        "outputs", "overlap", "blessed", "pushed_model", "summary_path", "span",
        "warm_started_from", "masks_reused", "masks_reuse", "architecture", "gates",
        "rows_read", "dropped_rows", "data_warnings", "data_drift", "data_skew")


def check_outputs(spec):
    """Raise ConfigError if a task of `spec` is named like a key of the summary, or a product's
    or reference score's `<name>_auc` key is."""
    taken = [t for t in spec.task_names() if t in KEYS] + [
        name for name in spec.output_names() + [r.name for r in spec.reference_scores]
        if f"{name}_auc" in KEYS + tuple(spec.task_names())]
    if taken:
        raise ConfigError(f"invalid configuration: spec.tasks / spec.products: {taken} would "
                          f"overwrite entries of the run summary (keys {list(KEYS)}): rename it")


def _artifact(outputs, node, key):
    artifacts = outputs.get(node, {}).get(key, [])
    return artifacts[0] if artifacts else None


def _uri(outputs, node, key):
    artifact = _artifact(outputs, node, key)
    return artifact.uri if artifact else None


def _property(artifact, name):
    if artifact is None or name not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[name]
    return value.string_value or value.int_value or value.double_value


def _json(directory, name):
    path = directory and os.path.join(directory, name)
    if not path or not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def build(outputs, layout, config):
    """Collect the run's results from its MLMD outputs and write `summary.json`."""
    transform_graph = _uri(outputs, "Transform", "transform_graph")
    tickets = _json(_uri(outputs, "TicketSearch", "masks"), "ticket_report.json")
    training = _json(_uri(outputs, "MTLTrainer", "model_run"), "training_report.json")
    result = {
        "transformed_examples": _uri(outputs, "Transform", "transformed_examples"),
        "vocabularies": transform_graph and os.path.join(transform_graph, "transform_fn", "assets"),
        "ticket_search": _uri(outputs, "TicketSearch", "masks"),
        "model": _uri(outputs, "MTLTrainer", "model"),
        "evaluation": _uri(outputs, "Evaluator", "evaluation"),
    }
    spec = config.spec
    examples = _artifact(outputs, "ImportExampleGen", "examples")
    result["span"] = spans.span_of(examples)
    result["rows_read"] = _property(examples, "rows_read")
    dropped = _property(examples, "dropped_rows")
    result["dropped_rows"] = json.loads(dropped) if dropped is not None else None
    checks = _json(_uri(outputs, "StrictExampleValidator", "anomalies"), "data_checks.json") \
        or {}
    for key in ("warnings", "drift", "skew"):
        result[f"data_{key}"] = checks.get(key)
    result["warm_started_from"] = (training.get("warm_start") or {}).get("from") \
        if training else None
    reuse = (tickets or {}).get("reuse") or {}
    result["masks_reused"] = reuse.get("reused") if tickets else None
    result["masks_reuse"] = reuse or None
    result["architecture"] = config.mtl.architecture
    result["outputs"] = spec.outputs()
    result["gates"] = {name: dict(zip(("auc_lower_bound", "max_auc_regression"), gate))
                       for name in spec.output_names() for gate in [config.gate(name)] if gate}
    for task in spec.task_names():
        ticket = (tickets or {}).get("tasks", {}).get(task)
        result[task] = {
            "dense_auc": ticket and ticket["dense_eval_metric"],
            "ticket_auc": ticket and ticket["chosen_eval_metric"],
            "ticket_round": ticket and ticket["chosen_round"],
            "density": ticket and ticket["chosen_density"],
            "mtl_auc": training and training["eval_auc"][task],
            "validation_auc": {
                "dense": ticket and ticket["dense_metric"],
                "ticket": ticket and ticket["chosen_metric"],
                "mtl": training and training["validation_auc"][task]},
            "epochs_trained": {
                "ticket_rounds": ticket and [r["epochs_trained"] for r in ticket["rounds"]],
                "mtl": training and training["epochs_trained"].get(task)},
            "calibration": training and training["eval_calibration"][task],
            "negative_transfer": training and training.get("negative_transfer", {}).get(task),
        }
    if tickets:
        overlap = tickets["overlap"]
        result["overlap"] = {k: overlap.get(k) for k in
                             ("tasks", "jaccard", "shared_fraction_of_total", "shared", "union",
                              "total", "pairwise")}
    if training:
        for product in result["outputs"]["products"]:
            result[f"{product}_auc"] = training["eval_auc"][product]
        for reference in result["outputs"]["reference_scores"]:
            result[f"{reference}_auc"] = training.get(f"{reference}_auc")
    blessing = _artifact(outputs, "Evaluator", "blessing")
    pushed = _artifact(outputs, "AtomicPusher", "pushed_model")
    result["blessed"] = bool(_property(blessing, "blessed")) if blessing else None
    result["pushed_model"] = (_property(pushed, "pushed_destination")
                              if pushed and _property(pushed, "pushed") else None)
    tmp = layout.summary_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    os.replace(tmp, layout.summary_path)
    result["summary_path"] = layout.summary_path
    return result


def _fmt(value):
    return "-" if value is None else f"{value:.4f}"


def render(result):
    """Human-readable summary table."""
    span = f"span {result['span']}, " if result.get("span") else ""
    lines = [f"lt4rec run finished ({span}mtl.architecture: "
             f"{result.get('architecture', 'lt4rec')}). "
             "AUC on validation (chose rounds, stopped training) / eval (reported, gated):",
             "  AUC val / eval   dense round 0     chosen ticket     masked MTL   density  "
             "MTL epochs  calibration"]
    outputs = result["outputs"]
    for task in outputs["tasks"]:
        r = result.get(task, {})
        val = r.get("validation_auc") or {}
        pairs = [f"{_fmt(val.get(key))} / {_fmt(r.get(name))}" for key, name in (
            ("dense", "dense_auc"), ("ticket", "ticket_auc"), ("mtl", "mtl_auc"))]
        epochs = (r.get("epochs_trained") or {}).get("mtl")
        lines.append(f"  {task.upper():<14} {pairs[0]:>15}   {pairs[1]:>15}   {pairs[2]:>15}   "
                     f"{_fmt(r.get('density')):>6}  {'-' if epochs is None else epochs:>10}  "
                     f"{_fmt(r.get('calibration')):>11}")
    for task in outputs["tasks"]:
        guard = (result.get(task) or {}).get("negative_transfer")
        if guard and guard["mtl_lost"]:
            lines.append(
                f"  NEGATIVE TRANSFER {task.upper()}: masked MTL {_fmt(guard['mtl_validation_auc'])}"
                f" < its own ticket {_fmt(guard['ticket_validation_auc'])} on validation (eval "
                f"{_fmt(guard['mtl_eval_auc'])} vs {_fmt(guard['ticket_eval_auc'])}); "
                + ("served from its ticket's weights" if guard["served_by"] == "ticket"
                   else "still served by MTL (mtl.negative_transfer: report)"))
    scores = [f"{name.upper()} AUC (MTL): {_fmt(result.get(f'{name}_auc'))}"
              for name in outputs["products"]]
    scores += [f"{name} AUC (scored like {task.upper()}): {_fmt(result.get(f'{name}_auc'))}"
               for name, task in outputs["reference_scores"].items()]
    if scores:
        lines.append("  " + "   ".join(scores))
    gates = result.get("gates", {})
    ungated = [name.upper() for name in outputs["tasks"] + list(outputs["products"])
               if name not in gates]
    lines.append("  gates (eval AUC >= bound, and at most the allowed drop below the last pushed "
                 "model): " + ", ".join(f"{name.upper()} >= {g['auc_lower_bound']:g} (drop "
                                        f"{g['max_auc_regression']:g})"
                                        for name, g in gates.items())
                 + (f"; not gated: {', '.join(ungated)}" if ungated else ""))
    if "overlap" in result:
        lines.append(f"  mask overlap: jaccard {_fmt(result['overlap']['jaccard'])}, shared "
                     f"{result['overlap']['shared']} of {result['overlap']['total']} connections")
    dropped = result.get("dropped_rows")
    if dropped:
        lines.append(f"  data: dropped {sum(dropped.values())} of {result['rows_read']} rows "
                     f"failing the schema's row checks: " + "; ".join(
                         f"{reason}: {rows}" for reason, rows in sorted(dropped.items())))
    lines += [f"  data warning: {line}" for line in result.get("data_warnings") or []]
    for kind, where in (("drift", "from span {previous_span}"), ("skew", "from serving")):
        checked = result.get(f"data_{kind}")
        if checked:
            lines.append(f"  data {kind} {where.format(**checked)}: " + ", ".join(
                f"{name} {_fmt(d['value'])} (threshold {d['threshold']:g})"
                for name, d in sorted(checked["features"].items())))
    reuse = result.get("masks_reuse")
    if reuse and reuse["reason"] != "ticket.reuse: never":
        lines.append(f"  tickets: reused from {reuse['from']} (searched on span "
                     f"{reuse['searched_span']}): no ticket trained, no negative-transfer check"
                     if reuse["reused"] else f"  tickets: searched ({reuse['reason']})")
    if result.get("warm_started_from"):
        lines.append(f"  MTL warm-started from {result['warm_started_from']}")
    lines += [f"  blessed: {result.get('blessed')}   pushed model: {result.get('pushed_model')}",
              f"  transformed examples: {result['transformed_examples']}",
              f"  vocabularies:         {result['vocabularies']}",
              f"  summary:              {os.path.abspath(result.get('summary_path', ''))}"]
    return "\n".join(lines)
