"""Masked multi-task training: one shared network, each task stepping through its own mask."""
import numpy as np
import tensorflow as tf

from modules import inputs as inputs_lib
from modules import pruning
from modules import tasks as task_lib
from modules.training import MaskedTrainer

TASKS = ("ctr", "cvr")


def schedule(mtl_config, tasks, seed):
    """Which tasks step on batch i: all in turn (round_robin) or one sampled (proportional)."""
    tasks = list(tasks)
    if mtl_config.schedule == "round_robin" or len(tasks) == 1:
        return lambda i: tasks
    weights = np.array([mtl_config.task_probabilities.get(t, 0.0) for t in tasks], dtype=float)
    if weights.sum() <= 0:
        raise ValueError(f"mtl.task_probabilities give no weight to any of {tasks}")
    draws = {}
    rng = np.random.default_rng(seed)

    def pick(i):
        while len(draws) <= i:
            draws[len(draws)] = [tasks[rng.choice(len(tasks), p=weights / weights.sum())]]
        return draws[i]
    return pick


def masks_for(mtl_config, network, ticket_masks):
    """The masks MTL trains through: the tickets, or all-ones (hard-sharing baseline)."""
    if mtl_config.masks == "ones":
        ones = pruning.ones_like([k.numpy() for k in network.prunable_weights()])
        return {task: ones for task in TASKS}
    missing = [t for t in TASKS if t not in ticket_masks]
    if missing:
        raise ValueError(f"ticket masks are missing task(s) {missing}; MTL needs {list(TASKS)}")
    return {task: ticket_masks[task] for task in TASKS}


def train(inputs, config, ticket_masks, start_prefix=None, train_tasks=TASKS, on_step=None):
    """Train from the start checkpoint (θ0 or the rewind point) through the task masks, with
    per-task early stopping on validation; returns (network, trainer, masks used, FitReport)."""
    network = inputs_lib.build_network(inputs, config, TASKS)
    if start_prefix:
        tf.train.Checkpoint(network=network).read(start_prefix).assert_existing_objects_matched()
    task_masks = masks_for(config.mtl, network, ticket_masks)
    trainer = MaskedTrainer(network, inputs.strategy, config.model, config.mtl.loss_weights)
    for task in TASKS:
        trainer.set_masks(task, task_masks[task])
    trainer.reset_optimizers()
    fit = trainer.fit(inputs.train, inputs.validation, train_tasks,
                      schedule(config.mtl, train_tasks, config.model.seed), config.mtl.stopping,
                      config.model.seed, on_step)
    return network, trainer, task_masks, fit


def scores(trainer, examples):
    """{ctr, cvr, ctcvr} probabilities for every example (ctcvr = ctr * cvr)."""
    result = {task: trainer.predict(examples, task) for task in TASKS}
    result["ctcvr"] = result["ctr"] * result["cvr"]
    return result


def metrics(trainer, examples):
    """{"auc": {ctr, cvr, ctcvr}, "calibration": {...}} on all rows, clicked rows, all rows.

    Calibration is mean prediction / mean label on those rows (ctcvr score = ctr * cvr).
    """
    predicted = scores(trainer, examples)
    return {kind: {name: fn(name, examples.arrays, score) for name, score in predicted.items()}
            for kind, fn in (("auc", task_lib.auc), ("calibration", task_lib.calibration))}


def evaluate(trainer, examples):
    """{ctr, cvr, ctcvr} AUCs (see `metrics`)."""
    return metrics(trainer, examples)["auc"]
