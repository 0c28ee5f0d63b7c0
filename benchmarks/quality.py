"""Quality comparison on the same data and splits over several seeds: mean ± std of eval AUCs.

Every arm is trained on the run's transformed train split, and everything it chooses (ticket
rounds, early stopping, the logistic regression's C) is chosen on the validation split; the eval
split only reports. Every network arm of a seed starts from the same θ0 that the seed's ticket
search drew. Arms:
- `logistic_regression`: one-hot ids, one model per task (CVR on clicked rows), C chosen on
  validation (`benchmarks.linear_baseline`); deterministic, so it has no seed spread;
- `dense_single_task`: one dense network per task (`mtl.train(..., train_tasks=[task])` with
  all-ones masks); its CTCVR score is the product of the two single-task models' scores;
- `shared_bottom`: one shared dense network, both tasks (hard sharing), from θ0;
- `mmoe`, `ple`: `mtl.architecture` mmoe and ple at the default `mtl.experts`, from their own
  seeded initialisation (their layouts differ from θ0's);
- `lt4rec`: ticket search per task (`run_search`, as the TicketSearch component), then masked MTL
  through the tickets and the negative-transfer guard (as the MTLTrainer component: a task whose
  MTL validation AUC is below its ticket's is served from the ticket's weights);
- `lt4rec_mtl_only`: the same MTL weights without the guard (what shipped before it);
- `lt4rec+ctcvr_loss`: LT4REC with the same tickets, CVR trained through ESMM's CTCVR loss
  (`mtl.product_losses: [ctcvr]`), guarded (with another spec: `lt4rec+<products>_loss`, every
  product of the spec trained through its loss; no such arm when the spec has no product).
Every network arm trains through `mtl.train` (the MTLTrainer's loop) and is exported as the
pipeline exports it; per arm: parameter counts (`parameters`) and, on the first seed, the
p50 latency of a PredictRequest to the exported model at batch 1 and 256.
Metrics: every output of the spec; on the LT4REC spec CTR AUC (all rows), CVR AUC (clicked rows),
CTCVR AUC (all rows, score ctr × cvr).
The seed sets model initialisation, dropout and batch order; data and splits are fixed by the run.
Std is the sample standard deviation (ddof=1). `differences` gives paired per-seed differences.
`--dataset small_logs` measures on a run over 4,300 rows of the generator's `small_logs` profile
(long-tailed ids, most seen once or twice; train/ and eval/ given 80/20, validation carved out of
train), like a small sample of real logs; `--dataset conflict` on the same size of the `conflict`
profile (small_logs with partly conflicting tasks, where negative transfer shows);
`--dataset feed` on 10,000 rows of the bring-your-own-data worked example's log
(`examples/feed/make_data.py`: three tasks, `click`, `like` on clicked rows, `finish` =
`watch_ratio >= 0.9` on clicked rows, and the product `click_like`), converted, schema-inferred
and run with `examples/feed/spec.yaml` as the README's walk-through does (hash-split by request).
"""
import dataclasses
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from benchmarks import common

NAME = "quality"
ARMS = ("logistic_regression", "dense_single_task", "shared_bottom", "mmoe", "ple",
        "lt4rec_mtl_only", "lt4rec")
ARM_LABELS = {"logistic_regression": "logistic regression (one-hot ids)",
              "dense_single_task": "dense single-task", "shared_bottom": "shared-bottom",
              "mmoe": "MMoE", "ple": "PLE",
              "lt4rec_mtl_only": "LT4REC, MTL weights only (no guard)",
              "lt4rec": "LT4REC sparse sharing (as shipped)"}
FEED_SPEC = os.path.join(common.REPO, "examples", "feed", "spec.yaml")
# --dataset: rows (else the config's), the generator's profile and whether it writes train/ and
# eval/ subdirectories; or a spec file and the function that writes its data.
DATASETS = {"default": {}, "small_logs": {"rows": 4300, "profile": "small_logs", "splits": True},
            "conflict": {"rows": 4300, "profile": "conflict", "splits": True},
            "feed": {"rows": 10000, "profile": "feed", "spec_file": FEED_SPEC,
                     "make_data": common.feed_data}}


def product_loss_arm(spec):
    """The name of the arm that trains every product of `spec` through its loss (None without
    products), e.g. `lt4rec+ctcvr_loss`."""
    names = [p.name for p in spec.products]
    return f"lt4rec+{'+'.join(names)}_loss" if names else None


def arm_names_of(spec):
    """(arm names in order, {arm: label}) for `spec`."""
    product_arm = product_loss_arm(spec)
    if not product_arm:
        return ARMS, ARM_LABELS
    label = "LT4REC + ESMM " + "/".join(p.name.upper() for p in spec.products) + " loss"
    return ARMS + (product_arm,), dict(ARM_LABELS, **{product_arm: label})


def _parser():
    p = common.add_root(common.parser(NAME, __doc__.split("\n")[0]))
    p.add_argument("--seeds", help="comma-separated seeds (default 42,43,44; quick 1,2)")
    p.add_argument("--dataset", choices=sorted(DATASETS), default="default",
                   help="the synthetic data of the run measured when --root is not given")
    return p


def _with_seed(config, seed, architecture=None, product_losses=None):
    model = dataclasses.replace(config.model, seed=seed)
    mtl_config = dataclasses.replace(
        config.mtl, architecture=architecture or config.mtl.architecture,
        product_losses=config.mtl.product_losses if product_losses is None else product_losses)
    return dataclasses.replace(config, model=model, mtl=mtl_config)


def _arm(trainer, inputs, seconds, **extra):
    """An arm's eval AUCs, validation AUCs and training time."""
    from modules import mtl
    return dict(mtl.evaluate(trainer, inputs.evaluation),
                validation=mtl.evaluate(trainer, inputs.validation), train_s=seconds, **extra)


def parameters(network, masks):
    """{"embeddings", "dense", "dense_used"}: parameter counts of `network`: embedding and
    linear-term tables; everything else (MLPs, gates, heads); the latter counting only the
    kernel entries some task's mask keeps."""
    import numpy as np
    tables = {id(t.embeddings) for t in network.tables.values()} | {
        id(t.embeddings) for per_task in network.linear.values() for t in per_task.values()}
    kernels = {id(k): i for i, k in enumerate(network.prunable_weights())}
    counts = {"embeddings": 0, "dense": 0, "dense_used": 0}
    for variable in network.trainable_variables:
        size = int(np.prod(variable.shape))
        counts["embeddings" if id(variable) in tables else "dense"] += size
        if id(variable) in kernels:
            kept = np.logical_or.reduce([np.asarray(m[kernels[id(variable)]], bool)
                                         for m in masks.values()])
            counts["dense_used"] += int(kept.sum())
        elif id(variable) not in tables:
            counts["dense_used"] += size
    return counts


def _served(trainer, masks, work, run, config, examples):
    """Parameter counts, and serving p50 latency of the arm exported as the pipeline exports
    it (when `examples` are given)."""
    from modules import export
    result = {"parameters": parameters(trainer.network, masks)}
    if examples:
        import tensorflow_transform as tft

        from benchmarks import serving
        path = tempfile.mkdtemp(dir=work)
        export.export(trainer.network, masks, tft.TFTransformOutput(run.transform_graph),
                      os.path.join(path, "model"), config.spec, trainer.served)
        result["serving_p50_ms"] = serving.predict_p50_ms(os.path.join(path, "model"),
                                                          examples)
        shutil.rmtree(path)
    return result


def one_seed(inputs, config, seed, work, linear, eval_arrays, run, examples=None):
    """{arm: {<output>: eval AUC, validation, train_s, parameters, ...}} and the ticket summary
    for one seed; with `examples`, each network arm's serving latency too."""
    import tf_keras as keras

    from modules.ticket_search import run_search, start_prefix, ticket_prefix
    from modules import mtl
    keras.utils.set_random_seed(seed)
    out = {}

    def mtl_arm(name, arm_config, tickets=None, theta0=None, search_s=0.0, guard_dir=None):
        start = time.perf_counter()
        _, trainer, masks, fit = mtl.train(inputs, arm_config, tickets or {}, theta0)
        seconds = search_s + time.perf_counter() - start
        extra = {"epochs": fit.epochs_trained, "kept": fit.kept}
        if guard_dir:
            if name == "lt4rec":        # the same MTL weights without the guard
                out["lt4rec_mtl_only"] = _arm(trainer, inputs, seconds, **extra)
            extra["negative_transfer"] = mtl.guard_negative_transfer(
                trainer, inputs, arm_config, tickets,
                {t: ticket_prefix(guard_dir, t) for t in tickets})
            extra["search_s"] = search_s
        out[name] = _arm(trainer, inputs, seconds, **extra,
                         **_served(trainer, masks, work, run, arm_config, examples))

    with tempfile.TemporaryDirectory(dir=work) as tmp:
        lt_config = _with_seed(config, seed, "lt4rec", [])
        start = time.perf_counter()
        report = run_search(inputs, lt_config, tmp)
        search_s = time.perf_counter() - start
        theta0 = start_prefix(tmp)
        from modules import masks as masks_lib
        tickets = masks_lib.load(tmp)
        mtl_arm("lt4rec", lt_config, tickets, theta0, search_s, tmp)
        if product_loss_arm(config.spec):
            mtl_arm(product_loss_arm(config.spec), _with_seed(
                config, seed, "lt4rec", [p.name for p in config.spec.products]), tickets,
                theta0, search_s, tmp)
        mtl_arm("shared_bottom", _with_seed(config, seed, "shared_bottom", []), theta0=theta0)
        for architecture in ("mmoe", "ple"):        # other layouts: their own seeded start
            mtl_arm(architecture, _with_seed(config, seed, architecture, []))

        start = time.perf_counter()
        scores, validation, epochs = {}, {}, {}
        ones_config = _with_seed(config, seed, "shared_bottom", [])
        for task in config.spec.task_names():
            _, trainer, _, fit = mtl.train(inputs, ones_config, {}, theta0, train_tasks=[task])
            scores[task] = trainer.predict(inputs.evaluation, task)
            validation[task] = fit.validation_auc[task]
            epochs[task] = fit.epochs_trained[task]
        for product in config.spec.products:
            scores[product.name] = np.prod([scores[t] for t in product.tasks], axis=0)
        from modules import tasks as task_lib
        out["dense_single_task"] = dict(
            {m: task_lib.auc(config.spec, m, eval_arrays, scores[m])
             for m in config.spec.output_names()},
            validation=validation, train_s=time.perf_counter() - start, epochs=epochs,
            parameters={k: len(validation) * v
                        for k, v in out["shared_bottom"]["parameters"].items()})
    out["logistic_regression"] = linear
    ticket = {task: {"density": r["chosen_density"], "round": r["chosen_round"],
                     "ticket_validation_auc": r["chosen_metric"],
                     "ticket_auc": r["chosen_eval_metric"], "round0_auc": r["dense_eval_metric"]}
              for task, r in report["tasks"].items()}
    ticket["overlap_jaccard"] = report["overlap"]["jaccard"]
    return out, ticket


def summarise(per_seed, arm_names, spec):
    """{arm: {metric: {mean, std, values}}} and paired differences vs. lt4rec."""
    metrics = spec.output_names()
    arms = {}
    for arm in arm_names:
        arms[arm] = {}
        for metric in metrics + ["train_s"]:
            values = [s[arm][metric] for s in per_seed]
            arms[arm][metric] = {"mean": float(np.mean(values)),
                                 "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                                 "values": [float(v) for v in values]}
        arms[arm]["validation"] = {task: float(np.mean([s[arm]["validation"][task]
                                                        for s in per_seed]))
                                   for task in spec.task_names()}
        for key in ("parameters", "serving_p50_ms"):        # the first seed's
            arms[arm][key] = per_seed[0][arm].get(key)
    differences = {}
    for other in (a for a in arm_names if a != "lt4rec"):
        differences[f"lt4rec_minus_{other}"] = {}
        for metric in metrics:
            diff = [s["lt4rec"][metric] - s[other][metric] for s in per_seed]
            differences[f"lt4rec_minus_{other}"][metric] = {
                "mean": float(np.mean(diff)),
                "std": float(np.std(diff, ddof=1)) if len(diff) > 1 else 0.0,
                "lt4rec_better_in": int(sum(d > 0 for d in diff)), "seeds": len(diff)}
    return arms, differences


def measure(args):
    dataset = DATASETS[args.dataset]
    config = common.load_config(args, dataset.get("spec_file"))
    if "rows" in dataset and not args.quick:
        config = dataclasses.replace(config, data=dataclasses.replace(
            config.data, synthetic_rows=dataset["rows"]))
    run = common.ensure_run(args, config, dataset.get("profile", "default"),
                            dataset.get("splits", False), dataset.get("make_data"))
    seeds = [int(s) for s in (args.seeds or ("1,2" if args.quick else "42,43,44")).split(",")]
    inputs = run.load_inputs(config)
    from benchmarks import linear_baseline
    eval_arrays = inputs.evaluation.read_arrays()       # small data: the baselines need them
    linear = linear_baseline.fit_and_score(inputs.train.read_arrays(),
                                           inputs.validation.read_arrays(), eval_arrays,
                                           config.spec)
    if args.quick:
        # One (partial) batch per epoch on the tiny data, so every step function is traced once
        # (tracing, not training, is what a quick run spends its time on).
        config = dataclasses.replace(config, model=dataclasses.replace(
            config.model, batch_size=max(config.model.batch_size, inputs.train.num_rows)))
    os.makedirs(args.work, exist_ok=True)
    from benchmarks import serving
    examples = serving.raw_examples(run, 2 if args.quick else 512)
    per_seed, tickets = [], []
    start = time.perf_counter()
    for seed in seeds:
        common.log(f"seed {seed}: ticket search, LT4REC (+ product loss), shared-bottom, MMoE, "
                   f"PLE, dense single-task")
        results, ticket = one_seed(inputs, config, seed, args.work, linear, eval_arrays, run,
                                 examples if seed == seeds[0] else None)
        per_seed.append(dict(results, seed=seed))
        tickets.append(dict(ticket, seed=seed))
    arm_names, labels = arm_names_of(config.spec)
    summary, differences = summarise(per_seed, arm_names, config.spec)
    try:
        pipeline_run = {"eval_auc": run.training_report()["eval_auc"]}
    except (OSError, KeyError, ValueError):
        pipeline_run = None
    return {"run_root": run.root, "dataset": args.dataset, "seeds": seeds,
            "metrics": config.spec.output_names(), "selected_on": "validation",
            "reported_on": "eval", "metric_rows": metric_rows(config.spec),
            "train_rows": inputs.train.num_rows, "validation_rows": inputs.validation.num_rows,
            "eval_rows": inputs.evaluation.num_rows,
            "config": config.to_json(("model", "ticket", "mtl")),
            "logistic_regression_c": linear["chosen_c"],
            "arms": summary, "arm_labels": labels, "arm_order": list(arm_names),
            "per_seed": per_seed, "tickets": tickets,
            "differences": differences, "pipeline_run_mtl": pipeline_run,
            "wall_s": time.perf_counter() - start}


def metric_rows(spec):
    """{output: the eval rows its AUC is measured on (and a product's score)}."""
    out = {}
    for name in spec.output_names():
        rows = spec.eval_columns(name)[1]
        out[name] = "all eval rows" if rows is None else f"eval rows where {rows} != 0"
        factors = dict((p.name, p.tasks) for p in spec.products).get(name)
        if factors:
            out[name] += ", score " + "*".join(factors)
    return out


def render(result):
    metrics, rows = result["metrics"], []
    for arm in result["arm_order"]:
        a = result["arms"][arm]
        size, latency = a.get("parameters"), a.get("serving_p50_ms")
        rows.append([result["arm_labels"][arm]] + [f"{a[m]['mean']:.4f} ± {a[m]['std']:.4f}"
                                                   for m in metrics]
                    + [f"{a['train_s']['mean']:.0f}"]
                    + [f"{size['dense_used']:,}" if size else "-"]
                    + ["/".join(f"{v:.1f}" for v in latency.values()) if latency else "-"])
    text = [f"{result['dataset']} data: eval AUC, mean ± std over seeds {result['seeds']}, "
            f"everything chosen on validation ({result['train_rows']:,} train / "
            f"{result['validation_rows']:,} validation / {result['eval_rows']:,} eval rows)",
            common.table(["model"] + [f"{m.upper()} AUC" for m in metrics]
                         + ["train s", "dense params used", "serving p50 ms (b1/b256)"], rows),
            ""]
    drows = []
    for key, diffs in result["differences"].items():
        drows.append([key.replace("_", " ")] + [
            f"{d['mean']:+.4f} ± {d['std']:.4f} ({d['lt4rec_better_in']}/{d['seeds']})"
            for d in (diffs[m] for m in metrics)])
    text.append(common.table(["paired difference (wins/seeds)"] + [m.upper() for m in metrics],
                             drows))
    tasks = [m for m in metrics if m in result["tickets"][0]]
    densities = ", ".join(f"seed {t['seed']}: " + " / ".join(
        f"{task} {t[task]['density']:.2f}" for task in tasks) for t in result["tickets"])
    text.append(f"ticket densities: {densities}")
    flagged = [f"seed {s['seed']}: {task} (MTL {g['mtl_validation_auc']:.4f} < ticket "
               f"{g['ticket_validation_auc']:.4f} on validation; eval {g['mtl_eval_auc']:.4f} -> "
               f"{g['ticket_eval_auc']:.4f})"
               for s in result["per_seed"] for task, g in s["lt4rec"]["negative_transfer"].items()
               if g["mtl_lost"]]
    text.append("negative transfer (served from the ticket): " + ("; ".join(flagged) or "none"))
    return "\n".join(text)


def main(argv=None):
    """Measure, print the table and write the JSON; returns the JSON payload."""
    return common.run_script(NAME, _parser(), measure, render, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
