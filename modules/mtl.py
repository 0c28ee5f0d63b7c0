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


def train(inputs, config, ticket_masks, theta0_prefix=None, train_tasks=TASKS, on_step=None):
    """Train from θ0 through the task masks; returns (network, trainer, masks used)."""
    network = inputs_lib.build_network(inputs, config, TASKS)
    if theta0_prefix:
        tf.train.Checkpoint(network=network).read(theta0_prefix).assert_existing_objects_matched()
    task_masks = masks_for(config.mtl, network, ticket_masks)
    trainer = MaskedTrainer(network, inputs.strategy, config.model, config.mtl.loss_weights)
    for task in TASKS:
        trainer.set_masks(task, task_masks[task])
    trainer.reset_optimizers()
    trainer.train(inputs.train, schedule(config.mtl, train_tasks, config.model.seed),
                  config.mtl.epochs, config.model.seed, on_step)
    return network, trainer, task_masks


def evaluate(trainer, examples):
    """{ctr, cvr, ctcvr}: AUCs on all rows, clicked rows, all rows (ctcvr score = ctr * cvr)."""
    scores = {task: trainer.predict(examples, task) for task in TASKS}
    scores["ctcvr"] = scores["ctr"] * scores["cvr"]
    return {name: task_lib.auc(name, examples.arrays, score) for name, score in scores.items()}
