"""Quality comparison on the same data and splits over several seeds: mean ± std of eval AUCs.

Every arm is trained on the run's transformed train split, and everything it chooses (ticket
rounds, early stopping, the logistic regression's C) is chosen on the validation split; the eval
split only reports. Every network arm of a seed starts from the same θ0 that the seed's ticket
search drew. Arms:
- `logistic_regression`: one-hot ids, one model per task (CVR on clicked rows), C chosen on
  validation (`benchmarks.linear_baseline`); deterministic, so it has no seed spread;
- `dense_single_task`: one dense network per task (`mtl.train(..., train_tasks=[task])` with
  all-ones masks); its CTCVR score is the product of the two single-task models' scores;
- `hard_sharing`: one shared dense network, both tasks (`mtl.architecture: shared_bottom`);
- `lt4rec`: ticket search per task (`run_search`, as the TicketSearch component), then masked MTL
  through the tickets and the negative-transfer guard (as the MTLTrainer component: a task whose
  MTL validation AUC is below its ticket's is served from the ticket's weights);
- `lt4rec_mtl_only`: the same MTL weights without the guard (what shipped before it).
Metrics: CTR AUC (all rows), CVR AUC (clicked rows), CTCVR AUC (all rows, score ctr × cvr).
The seed sets model initialisation, dropout and batch order; data and splits are fixed by the run.
Std is the sample standard deviation (ddof=1). `differences` gives paired per-seed differences.
`--dataset small_logs` measures on a run over 4,300 rows of the generator's `small_logs` profile
(long-tailed ids, most seen once or twice; train/ and eval/ given 80/20, validation carved out of
train), like a small sample of real logs; `--dataset conflict` on the same size of the `conflict`
profile (small_logs with partly conflicting tasks, where negative transfer shows).
"""
import dataclasses
import os
import sys
import tempfile
import time

import numpy as np

from benchmarks import common

NAME = "quality"
METRICS = ("ctr", "cvr", "ctcvr")
ARMS = ("logistic_regression", "dense_single_task", "hard_sharing", "lt4rec_mtl_only", "lt4rec")
ARM_LABELS = {"logistic_regression": "logistic regression (one-hot ids)",
              "dense_single_task": "dense single-task", "hard_sharing": "hard sharing (ones)",
              "lt4rec_mtl_only": "LT4REC, MTL weights only (no guard)",
              "lt4rec": "LT4REC sparse sharing (as shipped)"}
# --dataset: (rows, generator profile, write train/ and eval/ subdirectories).
DATASETS = {"default": None, "small_logs": (4300, "small_logs", True),
            "conflict": (4300, "conflict", True)}


def _parser():
    p = common.add_root(common.parser(NAME, __doc__.split("\n")[0]))
    p.add_argument("--seeds", help="comma-separated seeds (default 42,43,44; quick 1,2)")
    p.add_argument("--dataset", choices=sorted(DATASETS), default="default",
                   help="the synthetic data of the run measured when --root is not given")
    return p


def _with_seed(config, seed, architecture=None):
    model = dataclasses.replace(config.model, seed=seed)
    mtl_config = dataclasses.replace(config.mtl,
                                     architecture=architecture or config.mtl.architecture)
    return dataclasses.replace(config, model=model, mtl=mtl_config)


def _arm(trainer, inputs, seconds, **extra):
    """An arm's eval AUCs, validation AUCs and training time."""
    from modules import mtl
    return dict(mtl.evaluate(trainer, inputs.evaluation),
                validation=mtl.evaluate(trainer, inputs.validation), train_s=seconds, **extra)


def one_seed(inputs, config, seed, work, linear, eval_arrays):
    """{arm: {ctr, cvr, ctcvr, validation, train_s}} and the ticket summary for one seed."""
    import tf_keras as keras

    from modules.ticket_search import run_search, start_prefix, ticket_prefix
    from modules import mtl
    keras.utils.set_random_seed(seed)
    lt_config = _with_seed(config, seed, "lt4rec")
    ones_config = _with_seed(config, seed, "shared_bottom")
    out = {}
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        start = time.perf_counter()
        report = run_search(inputs, lt_config, tmp)
        search_s = time.perf_counter() - start
        theta0 = start_prefix(tmp)
        from modules import masks as masks_lib
        tickets = masks_lib.load(tmp)

        start = time.perf_counter()
        _, trainer, _, fit = mtl.train(inputs, lt_config, tickets, theta0)
        seconds = search_s + time.perf_counter() - start
        out["lt4rec_mtl_only"] = _arm(trainer, inputs, seconds, epochs=fit.epochs_trained,
                                      kept=fit.kept)
        guard = mtl.guard_negative_transfer(trainer, inputs, lt_config, tickets,
                                            {t: ticket_prefix(tmp, t) for t in tickets})
        out["lt4rec"] = _arm(trainer, inputs, seconds, search_s=search_s,
                             epochs=fit.epochs_trained, negative_transfer=guard)

        start = time.perf_counter()
        _, trainer, _, fit = mtl.train(inputs, ones_config, {}, theta0)
        out["hard_sharing"] = _arm(trainer, inputs, time.perf_counter() - start,
                                   epochs=fit.epochs_trained)

        start = time.perf_counter()
        scores, validation, epochs = {}, {}, {}
        for task in config.spec.task_names():
            _, trainer, _, fit = mtl.train(inputs, ones_config, {}, theta0, train_tasks=[task])
            scores[task] = trainer.predict(inputs.evaluation, task)
            validation[task] = fit.validation_auc[task]
            epochs[task] = fit.epochs_trained[task]
        scores["ctcvr"] = scores["ctr"] * scores["cvr"]
        from modules import tasks as task_lib
        out["dense_single_task"] = dict(
            {m: task_lib.auc(config.spec, m, eval_arrays, scores[m]) for m in METRICS},
            validation=validation, train_s=time.perf_counter() - start, epochs=epochs)
    out["logistic_regression"] = linear
    ticket = {task: {"density": r["chosen_density"], "round": r["chosen_round"],
                     "ticket_validation_auc": r["chosen_metric"],
                     "ticket_auc": r["chosen_eval_metric"], "round0_auc": r["dense_eval_metric"]}
              for task, r in report["tasks"].items()}
    ticket["overlap_jaccard"] = report["overlap"]["jaccard"]
    return out, ticket


def summarise(per_seed):
    """{arm: {metric: {mean, std, values}}} and paired differences vs. lt4rec."""
    arms = {}
    for arm in ARMS:
        arms[arm] = {}
        for metric in METRICS + ("train_s",):
            values = [s[arm][metric] for s in per_seed]
            arms[arm][metric] = {"mean": float(np.mean(values)),
                                 "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                                 "values": [float(v) for v in values]}
        arms[arm]["validation"] = {task: float(np.mean([s[arm]["validation"][task]
                                                        for s in per_seed]))
                                   for task in ("ctr", "cvr")}
    differences = {}
    for other in ("logistic_regression", "hard_sharing", "dense_single_task", "lt4rec_mtl_only"):
        differences[f"lt4rec_minus_{other}"] = {}
        for metric in METRICS:
            diff = [s["lt4rec"][metric] - s[other][metric] for s in per_seed]
            differences[f"lt4rec_minus_{other}"][metric] = {
                "mean": float(np.mean(diff)),
                "std": float(np.std(diff, ddof=1)) if len(diff) > 1 else 0.0,
                "lt4rec_better_in": int(sum(d > 0 for d in diff)), "seeds": len(diff)}
    return arms, differences


def measure(args):
    config = common.load_config(args)
    dataset = DATASETS[args.dataset]
    if dataset and not args.quick:
        config = dataclasses.replace(config, data=dataclasses.replace(
            config.data, synthetic_rows=dataset[0]))
    run = common.ensure_run(args, config, *(dataset[1:] if dataset else ()))
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
    per_seed, tickets = [], []
    start = time.perf_counter()
    for seed in seeds:
        common.log(f"seed {seed}: ticket search, LT4REC, hard sharing, dense single-task")
        arms, ticket = one_seed(inputs, config, seed, args.work, linear, eval_arrays)
        per_seed.append(dict(arms, seed=seed))
        tickets.append(dict(ticket, seed=seed))
    arms, differences = summarise(per_seed)
    try:
        pipeline_run = {"eval_auc": run.training_report()["eval_auc"]}
    except (OSError, KeyError, ValueError):
        pipeline_run = None
    return {"run_root": run.root, "dataset": args.dataset, "seeds": seeds,
            "metrics": list(METRICS), "selected_on": "validation", "reported_on": "eval",
            "metric_rows": {"ctr": "all eval rows", "cvr": "clicked eval rows",
                            "ctcvr": "all eval rows, score ctr*cvr"},
            "train_rows": inputs.train.num_rows, "validation_rows": inputs.validation.num_rows,
            "eval_rows": inputs.evaluation.num_rows,
            "config": config.to_json(("model", "ticket", "mtl")),
            "logistic_regression_c": linear["chosen_c"],
            "arms": arms, "arm_labels": ARM_LABELS, "per_seed": per_seed, "tickets": tickets,
            "differences": differences, "pipeline_run_mtl": pipeline_run,
            "wall_s": time.perf_counter() - start}


def render(result):
    rows = []
    for arm in ARMS:
        a = result["arms"][arm]
        rows.append([ARM_LABELS[arm]] + [f"{a[m]['mean']:.4f} ± {a[m]['std']:.4f}"
                                         for m in METRICS] + [f"{a['train_s']['mean']:.0f}"])
    text = [f"{result['dataset']} data: eval AUC, mean ± std over seeds {result['seeds']}, "
            f"everything chosen on validation ({result['train_rows']:,} train / "
            f"{result['validation_rows']:,} validation / {result['eval_rows']:,} eval rows)",
            common.table(["model", "CTR AUC", "CVR AUC (clicked)", "CTCVR AUC", "train s"],
                         rows), ""]
    drows = []
    for key, diffs in result["differences"].items():
        drows.append([key.replace("_", " ")] + [
            f"{d['mean']:+.4f} ± {d['std']:.4f} ({d['lt4rec_better_in']}/{d['seeds']})"
            for d in (diffs[m] for m in METRICS)])
    text.append(common.table(["paired difference (wins/seeds)", "CTR", "CVR", "CTCVR"], drows))
    densities = ", ".join(f"seed {t['seed']}: ctr {t['ctr']['density']:.2f} / "
                          f"cvr {t['cvr']['density']:.2f}" for t in result["tickets"])
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
