"""Quality comparison on the same data and splits over several seeds: mean ± std of eval AUCs.

Arms (all trained on the run's transformed train split, evaluated on its eval split, every arm of
a seed started from the same θ0 that the seed's ticket search drew):
- `dense_single_task`: one dense network per task (`mtl.train(..., train_tasks=[task])` with
  all-ones masks); its CTCVR score is the product of the two single-task models' scores;
- `hard_sharing`: one shared dense network, both tasks (`mtl.masks = "ones"`);
- `lt4rec`: ticket search per task (`run_search`, as the TicketSearch component), then masked MTL
  through the tickets (as the MTLTrainer component).
Metrics: CTR AUC (all rows), CVR AUC (clicked rows), CTCVR AUC (all rows, score ctr × cvr).
The seed sets model initialisation and batch order; data and splits are fixed by the run.
Std is the sample standard deviation (ddof=1). `differences` gives paired per-seed differences.
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
ARMS = ("dense_single_task", "hard_sharing", "lt4rec")
ARM_LABELS = {"dense_single_task": "dense single-task", "hard_sharing": "hard sharing (ones)",
              "lt4rec": "LT4REC sparse sharing"}


def _parser():
    p = common.add_root(common.parser(NAME, __doc__.split("\n")[0]))
    p.add_argument("--seeds", help="comma-separated seeds (default 42,43,44; quick 1,2)")
    return p


def _with_seed(config, seed, masks=None):
    model = dataclasses.replace(config.model, seed=seed)
    mtl_config = dataclasses.replace(config.mtl, masks=masks or config.mtl.masks)
    return dataclasses.replace(config, model=model, mtl=mtl_config)


def one_seed(inputs, config, seed, work):
    """{arm: {ctr, cvr, ctcvr, train_s}} and the ticket summary for one seed."""
    import tf_keras as keras

    from components.ticket_search.executor import run_search, theta0_prefix
    from modules import mtl
    keras.utils.set_random_seed(seed)
    lt_config = _with_seed(config, seed, "tickets")
    ones_config = _with_seed(config, seed, "ones")
    out = {}
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        start = time.perf_counter()
        report = run_search(inputs, lt_config, tmp)
        search_s = time.perf_counter() - start
        theta0 = theta0_prefix(tmp)
        from modules import masks as masks_lib
        tickets = masks_lib.load(tmp)

        start = time.perf_counter()
        _, trainer, _ = mtl.train(inputs, lt_config, tickets, theta0)
        out["lt4rec"] = dict(mtl.evaluate(trainer, inputs.evaluation),
                             train_s=search_s + time.perf_counter() - start,
                             search_s=search_s)

        start = time.perf_counter()
        _, trainer, _ = mtl.train(inputs, ones_config, {}, theta0)
        out["hard_sharing"] = dict(mtl.evaluate(trainer, inputs.evaluation),
                                   train_s=time.perf_counter() - start)

        start = time.perf_counter()
        scores = {}
        for task in mtl.TASKS:
            _, trainer, _ = mtl.train(inputs, ones_config, {}, theta0, train_tasks=[task])
            scores[task] = trainer.predict(inputs.evaluation, task)
        scores["ctcvr"] = scores["ctr"] * scores["cvr"]
        from modules import tasks as task_lib
        out["dense_single_task"] = dict(
            {m: task_lib.auc(m, inputs.evaluation.arrays, scores[m]) for m in METRICS},
            train_s=time.perf_counter() - start)
    ticket = {task: {"density": r["chosen_density"], "round": r["chosen_round"],
                     "ticket_auc": r["chosen_metric"], "round0_auc": r["dense_metric"]}
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
    differences = {}
    for other in ("hard_sharing", "dense_single_task"):
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
    run = common.ensure_run(args, config)
    seeds = [int(s) for s in (args.seeds or ("1,2" if args.quick else "42,43,44")).split(",")]
    inputs = run.load_inputs(config)
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
        arms, ticket = one_seed(inputs, config, seed, args.work)
        per_seed.append(dict(arms, seed=seed))
        tickets.append(dict(ticket, seed=seed))
    arms, differences = summarise(per_seed)
    try:
        pipeline_run = {"eval_auc": run.training_report()["eval_auc"]}
    except (OSError, KeyError, ValueError):
        pipeline_run = None
    return {"run_root": run.root, "seeds": seeds, "metrics": list(METRICS),
            "metric_rows": {"ctr": "all eval rows", "cvr": "clicked eval rows",
                            "ctcvr": "all eval rows, score ctr*cvr"},
            "train_rows": inputs.train.num_rows, "eval_rows": inputs.evaluation.num_rows,
            "config": {"hidden_units": list(config.model.hidden_units),
                       "batch_size": config.model.batch_size,
                       "learning_rate": config.model.learning_rate,
                       "ticket_rounds": config.ticket.rounds,
                       "final_density": config.ticket.final_density,
                       "mtl_epochs": config.mtl.epochs},
            "arms": arms, "arm_labels": ARM_LABELS, "per_seed": per_seed, "tickets": tickets,
            "differences": differences, "pipeline_run_mtl": pipeline_run,
            "wall_s": time.perf_counter() - start}


def render(result):
    rows = []
    for arm in ARMS:
        a = result["arms"][arm]
        rows.append([ARM_LABELS[arm]] + [f"{a[m]['mean']:.4f} ± {a[m]['std']:.4f}"
                                         for m in METRICS] + [f"{a['train_s']['mean']:.0f}"])
    text = [f"Eval AUC, mean ± std over seeds {result['seeds']} "
            f"({result['train_rows']:,} train / {result['eval_rows']:,} eval rows)",
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
    return "\n".join(text)


def main(argv=None):
    """Measure, print the table and write the JSON; returns the JSON payload."""
    return common.run_script(NAME, _parser(), measure, render, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
