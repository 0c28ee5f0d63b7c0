"""Masked multi-task training: one shared network, each task stepping through its own mask."""
import json
import os

from absl import logging

import numpy as np
import tensorflow as tf

from modules import export
from modules import inputs as inputs_lib
from modules import pruning
from modules import warm_start
from modules.training import MaskedTrainer, improved

REPORT_FILE = "training_report.json"


def schedule(mtl_config, tasks, seed):
    """Which tasks step on batch i: all in turn (round_robin) or one sampled (proportional)."""
    tasks = list(tasks)
    if mtl_config.schedule == "round_robin" or len(tasks) == 1:
        return lambda i: tasks
    weights = np.array([mtl_config.task_probabilities.get(t, 1.0) for t in tasks], dtype=float)
    if weights.sum() <= 0:
        raise ValueError(f"mtl.task_probabilities give no weight to any of {tasks}")
    draws = {}
    rng = np.random.default_rng(seed)

    def pick(i):
        while len(draws) <= i:
            draws[len(draws)] = [tasks[rng.choice(len(tasks), p=weights / weights.sum())]]
        return draws[i]
    return pick


def masks_for(config, network, ticket_masks):
    """The masks MTL trains through: the tickets (`lt4rec`), or for the other architectures
    what each task reads: all of a kernel it reads, none of one it does not."""
    tasks = config.spec.task_names()
    if not config.searches_tickets():
        return {task: [np.full(k.shape, read, dtype=bool)
                       for k, read in zip(network.prunable_weights(), network.reads(task))]
                for task in tasks}
    missing = [t for t in tasks if t not in ticket_masks]
    if missing:
        raise ValueError(f"ticket masks are missing task(s) {missing}; MTL needs {tasks}")
    return {task: ticket_masks[task] for task in tasks}


def train(inputs, config, ticket_masks, start_prefix=None, train_tasks=None, on_log=None,
          initialise=None):
    """Train from the start checkpoint (θ0 or the rewind point), or what `initialise(network)`
    writes into the network (a warm start), through the task masks, with per-task early
    stopping on validation (of `train_tasks`, default every task); returns (network, trainer,
    masks used, FitReport)."""
    tasks = config.spec.task_names()
    train_tasks = tasks if train_tasks is None else train_tasks
    network = inputs_lib.build_network(inputs, config, tasks)
    if start_prefix:
        tf.train.Checkpoint(network=network).read(start_prefix).assert_existing_objects_matched()
    if initialise:
        initialise(network)
    task_masks = masks_for(config, network, ticket_masks)
    trainer = MaskedTrainer(network, inputs.strategy, config, config.mtl.loss_weights,
                            config.mtl.product_losses)
    for task in tasks:
        trainer.set_masks(task, task_masks[task])
    trainer.reset_optimizers()
    fit = trainer.fit(inputs.train, inputs.validation, train_tasks,
                      schedule(config.mtl, train_tasks, config.model.seed), config.mtl.stopping,
                      config.model.seed, on_log)
    return network, trainer, task_masks, fit


def guard_negative_transfer(trainer, inputs, config, ticket_masks, ticket_prefixes):
    """Compare each task's MTL validation AUC with its own ticket's (the chosen round trained on
    that task alone, read from `ticket_prefixes[task]`) by the early-stopping rule (`improved`
    with `mtl.stopping.min_delta` and the AUCs' error bounds). Where MTL lost, log a warning and,
    with `mtl.negative_transfer: serve_ticket`, serve that task from its ticket's weights
    (`MaskedTrainer.serve_from`). Returns {task: record}: both AUCs on validation (what decides)
    and eval (reported), whether MTL lost, and what serves the task ("mtl" or "ticket")."""
    tasks = config.spec.task_names()
    mtl_validation = trainer.auc_metrics(inputs.validation, tasks)
    mtl_eval = trainer.auc_metrics(inputs.evaluation, tasks)
    records = {}
    for task in tasks:
        if task not in ticket_prefixes or task not in ticket_masks:
            continue                       # no ticket was searched for this task
        network = inputs_lib.build_network(inputs, config, config.ticket_tasks())
        tf.train.Checkpoint(network=network).read(
            ticket_prefixes[task]).assert_existing_objects_matched()
        alone = MaskedTrainer(network, inputs.strategy, config)
        alone.set_masks(task, ticket_masks[task])
        validation = alone.auc_metrics(inputs.validation, [task])[task]
        lost = improved(validation["auc"], mtl_validation[task]["auc"],
                        validation["auc_max_error"], mtl_validation[task]["auc_max_error"],
                        config.mtl.stopping.min_delta)
        records[task] = {
            "mtl_validation_auc": mtl_validation[task]["auc"],
            "ticket_validation_auc": validation["auc"],
            "mtl_eval_auc": mtl_eval[task]["auc"],
            "ticket_eval_auc": alone.auc_metrics(inputs.evaluation, [task])[task]["auc"],
            "mtl_lost": lost, "served_by": "mtl"}
        if lost:
            fix = config.mtl.negative_transfer == "serve_ticket"
            logging.warning(
                "negative transfer: %s validation AUC %.4f in masked MTL < %.4f of its own ticket "
                "trained alone; %s", task, mtl_validation[task]["auc"], validation["auc"],
                f"serving {task} from its ticket's weights" if fix
                else "mtl.negative_transfer: report keeps the MTL weights")
            if fix:
                trainer.serve_from(task, network, ticket_masks[task])
                records[task]["served_by"] = "ticket"
    return records


def metrics(trainer, examples):
    """{"auc", "auc_max_error", "calibration"}: {output: value} of every task and product of
    the trainer's spec, streamed in one pass, each on its rows (`tasks.eval_rows`); calibration
    is mean prediction / mean label on those rows.
    """
    results = trainer.metrics(examples, trainer.spec.output_names())
    return {kind: {name: result[kind] for name, result in results.items()}
            for kind in ("auc", "auc_max_error", "calibration")}


def evaluate(trainer, examples):
    """{output: AUC} (see `metrics`)."""
    return metrics(trainer, examples)["auc"]


def train_and_guard(inputs, config, ticket_masks, start_prefix, ticket_prefixes, on_log=None,
                    initialise=None):
    """`train`, then drop the optimizers (training is over: their Adam slots, twice each table
    per task, would otherwise sit beside the ticket networks the guard loads), then
    `guard_negative_transfer`. Returns (network, trainer, masks used, FitReport, guard records)."""
    network, trainer, task_masks, fit = train(inputs, config, ticket_masks, start_prefix,
                                              on_log=on_log, initialise=initialise)
    trainer.release_optimizers()
    transfer = guard_negative_transfer(trainer, inputs, config, ticket_masks, ticket_prefixes)
    return network, trainer, task_masks, fit, transfer


def train_and_export(inputs, config, ticket_masks, start, tft_output, serving_path, run_dir,
                     ticket_prefixes, warm_from=None, ticket_provenance=None):
    """Train (early stopping on validation; from the model at `warm_from` when given, see
    `modules/warm_start.py`), guard against negative transfer (each task against its ticket at
    `ticket_prefixes[task]`), evaluate on validation and eval, export (publishing the masks with
    `ticket_provenance` and the tasks served from their tickets); write and return the training
    report (its AUCs are those of the model exported)."""
    warm = {}

    def initialise(network):
        tasks = config.spec.task_names()
        warm.update(warm_start.apply(
            network, warm_from, tft_output, config,
            lambda sizes: inputs_lib.network_for(sizes, config, tasks)))
        logging.info("warm start from %s: rows kept %s, new %s", warm_from, warm["rows_kept"],
                     warm["rows_new"])

    writer = tf.summary.create_file_writer(os.path.join(run_dir, "mtl"))

    def on_log(step, losses):
        with writer.as_default(step=step):
            for task, loss in losses.items():
                tf.summary.scalar(f"loss/{task}", loss)

    network, trainer, task_masks, fit, transfer = train_and_guard(
        inputs, config, ticket_masks, start, ticket_prefixes, on_log,
        initialise if warm_from else None)
    validation = metrics(trainer, inputs.validation)
    evaluation = metrics(trainer, inputs.evaluation)
    references = trainer.metrics(inputs.evaluation, list(trainer.references)) \
        if trainer.references else {}
    with writer.as_default(step=trainer.global_step):
        for check in fit.checks:
            for name, value in check["validation_auc"].items():
                tf.summary.scalar(f"validation_auc/{name}", value, step=check["step"])
        for name, value in evaluation["auc"].items():
            tf.summary.scalar(f"eval_auc/{name}", value)
    writer.close()
    export.export(network, task_masks, tft_output, serving_path, config.spec, trainer.served,
                  ticket_provenance and {**ticket_provenance,
                                         "served_by_ticket": sorted(trainer.served)})
    report = {"eval_auc": evaluation["auc"], "eval_calibration": evaluation["calibration"],
              "eval_auc_max_error": evaluation["auc_max_error"],
              "validation_auc": validation["auc"],
              "validation_calibration": validation["calibration"],
              "early_stopping": fit.to_json(), "epochs_trained": fit.epochs_trained,
              "negative_transfer": transfer, "warm_start": warm or None,
              "steps": trainer.global_step, "architecture": config.mtl.architecture,
              "density": {t: pruning.density(m) for t, m in task_masks.items()},
              "eval_rows": inputs.evaluation.num_rows, "train_rows": inputs.train.num_rows,
              "validation_rows": inputs.validation.num_rows,
              "embedding_tables": inputs.table_memory,
              "outputs": config.spec.outputs(),
              **{f"{name}_auc": result["auc"] for name, result in references.items()}}
    tf.io.gfile.makedirs(run_dir)
    with tf.io.gfile.GFile(os.path.join(run_dir, REPORT_FILE), "w") as f:
        f.write(json.dumps(report, indent=2, sort_keys=True))
    return report
