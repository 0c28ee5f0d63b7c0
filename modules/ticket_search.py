"""Lottery-ticket search for one task: iterative global magnitude pruning with rewinding.

Round 0 trains the dense network from the rewind point; each later round k prunes the remaining
prunable weights down to round(keep^k * total) by global magnitude (using the weights trained in
round k-1), rewinds every weight to the rewind point and every optimizer state to zero, and retrains
under the new mask. Every round is evaluated on the same eval examples.
"""
import dataclasses
from typing import List

import numpy as np
import tensorflow as tf

from modules import pruning


@dataclasses.dataclass
class RoundResult:
    """One round of one task's search."""
    round: int
    kept: int
    density: float
    layer_density: List[float]
    metric: float
    masks: list = dataclasses.field(repr=False, default=None)

    def to_json(self):
        """JSON-able record (without the mask arrays)."""
        return {"round": self.round, "kept": self.kept, "density": self.density,
                "layer_density": self.layer_density, "metric": self.metric}


def snapshot(network):
    """Copy of every network variable's value."""
    return [v.numpy().copy() for v in network.variables]


def restore(network, values):
    """Assign a `snapshot` back to the network."""
    for var, value in zip(network.variables, values):
        var.assign(value)


def search_task(trainer, task, train, evaluation, ticket_config, theta0, seed, log_dir=None):
    """Run the rounds for `task`; returns [RoundResult] (round 0 dense first)."""
    network = trainer.network
    kernels = network.prunable_weights()
    total = sum(int(np.prod(k.shape)) for k in kernels)
    masks = pruning.ones_like([k.numpy() for k in kernels])
    rewind_point = theta0
    results = []
    for round_index in range(ticket_config.rounds + 1):
        if round_index > 0:
            keep = pruning.target_count(total, ticket_config.keep_per_round, round_index)
            masks = pruning.prune_global([k.numpy() for k in kernels], masks, keep)
        restore(network, rewind_point)
        trainer.set_masks(task, masks)
        trainer.reset_optimizers()
        writer = tf.summary.create_file_writer(f"{log_dir}/{task}/round_{round_index}") \
            if log_dir else None
        capture = {}

        def on_step(step, losses, writer=writer, first_round=round_index == 0):
            if first_round and step == ticket_config.rewind_step and ticket_config.rewind_step:
                capture["rewind"] = snapshot(network)
            if writer and step % 20 == 0:
                with writer.as_default(step=step):
                    tf.summary.scalar(f"loss/{task}", losses[task])

        trainer.global_step = 0
        trainer.train(train, lambda _: [task], ticket_config.epochs_per_round, seed, on_step)
        metric = trainer.evaluate(evaluation, [task])[task]
        if writer:
            with writer.as_default(step=trainer.global_step):
                tf.summary.scalar(f"eval_auc/{task}", metric)
                tf.summary.scalar("density", pruning.density(masks))
            writer.close()
        if round_index == 0 and ticket_config.rewind_step:
            if "rewind" not in capture:
                raise ValueError(f"ticket.rewind_step = {ticket_config.rewind_step} exceeds the "
                                 f"{trainer.global_step} steps of round 0")
            rewind_point = capture["rewind"]
        results.append(RoundResult(
            round=round_index, kept=int(sum(m.sum() for m in masks)),
            density=pruning.density(masks), layer_density=[float(m.mean()) for m in masks],
            metric=metric, masks=[m.copy() for m in masks]))
    return results


def select_round(results, min_density=0.0, max_density=1.0, tolerance=0.0):
    """The winning round: best metric among rounds with min_density <= density <= max_density.

    Metrics within `tolerance` of each other tie, and ties go to the sparser mask.
    """
    candidates = [r for r in results if min_density <= r.density <= max_density]
    if not candidates:
        raise ValueError(f"no round has a density in [{min_density}, {max_density}]; "
                         f"densities: {[round(r.density, 4) for r in results]}")
    best = max(r.metric for r in candidates)
    tied = [r for r in candidates if r.metric >= best - tolerance]
    return min(tied, key=lambda r: (r.density, r.round))
