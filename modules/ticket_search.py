"""Lottery-ticket search for one task: iterative global magnitude pruning with rewinding.

Round 0 trains the dense network from the rewind point; each later round k prunes the remaining
prunable weights down to round(keep^k * total) by global magnitude (using the weights round k-1
kept), rewinds every weight to the rewind point and every optimizer state to zero, and retrains
under the new mask. Each round trains with early stopping on the validation split and keeps its
best weights; its metric is that validation AUC, so choosing a round never reads eval data. The
eval AUC of each round is recorded for the report only.
"""
import dataclasses
import functools
import json
import os
from typing import List

import numpy as np
import tensorflow as tf

from modules import inputs as inputs_lib
from modules import masks as masks_lib
from modules import plots, progress, pruning, ticket_reuse
from modules.training import MaskedTrainer

# Layout of a TaskMasks artifact besides the masks (`masks_lib`).
THETA0_DIR = "theta0"
REWIND_DIR = "rewind"
TICKETS_DIR = "tickets"
REPORT_FILE = "ticket_report.json"
PLOT_FILE = "pruning_curves.png"


def theta0_prefix(masks_uri):
    """Checkpoint prefix of θ0 inside a TaskMasks artifact."""
    return os.path.join(masks_uri, THETA0_DIR, "ckpt")


def ticket_prefix(masks_uri, task):
    """Checkpoint prefix of `task`'s chosen round's trained weights (its ticket as trained alone),
    which MTL serves the task from if it lost to it on validation."""
    return os.path.join(masks_uri, TICKETS_DIR, task, "ckpt")


def start_prefix(masks_uri):
    """Checkpoint prefix MTL starts from: the late-rewind point if the search had one, else θ0."""
    rewind = os.path.join(masks_uri, REWIND_DIR, "ckpt")
    return rewind if tf.io.gfile.exists(rewind + ".index") else theta0_prefix(masks_uri)


@dataclasses.dataclass
class RoundResult:
    """One round of one task's search."""
    round: int
    kept: int
    density: float
    layer_density: List[float]
    metric: float                      # validation AUC: what selection reads
    eval_metric: float = None          # eval AUC: reported only
    epochs_trained: float = None
    seconds: dict = None               # the fit's wall time per phase (`FitReport.seconds`)
    masks: list = dataclasses.field(repr=False, default=None)

    def to_json(self):
        """JSON-able record (without the mask arrays)."""
        return {"round": self.round, "kept": self.kept, "density": self.density,
                "layer_density": self.layer_density, "metric": self.metric,
                "validation_auc": self.metric, "eval_auc": self.eval_metric,
                "epochs_trained": self.epochs_trained, "seconds": self.seconds}


def rewind_point(trainer, train, tasks, steps, seed):
    """Train the network to the rewind point: `steps` batches of dense multi-task training from
    the current weights.

    Every task in `tasks` steps on every batch through all-ones masks, from zeroed optimizers.
    Used for late rewinding (`ticket.rewind_step`): one point for every task's search and MTL.
    """
    for task in tasks:
        trainer.set_masks(task, pruning.ones_like([k.numpy() for k in
                                                   trainer.network.prunable_weights()]))
    trainer.reset_optimizers()
    trainer.train_steps(train, lambda _: list(tasks), steps, seed)


def search_task(trainer, task, inputs, ticket_config, start, seed, log_dir=None,
                on_chosen=None):
    """Run the rounds for `task`; returns [RoundResult] (dense first).

    `start()` puts the starting weights (θ0 or the rewind point) back before each round.
    `on_chosen()`, if given, is called while the network holds the trained weights of the round
    `select_round` chooses so far: each new round is sparser than every earlier one, so the
    choice after each round is either the earlier choice or the new round (`run_search` writes
    them to the task's ticket checkpoint there, so no copy of them is held in memory).
    """
    network = trainer.network
    kernels = network.prunable_weights()
    total = sum(int(np.prod(k.shape)) for k in kernels)
    masks = pruning.ones_like([k.numpy() for k in kernels])
    results = []
    for round_index in range(ticket_config.rounds + 1):
        if round_index > 0:
            keep = pruning.target_count(total, ticket_config.keep_per_round, round_index)
            masks = pruning.prune_global([k.numpy() for k in kernels], masks, keep)
        start()
        trainer.set_masks(task, masks)
        trainer.reset_optimizers()
        writer = tf.summary.create_file_writer(f"{log_dir}/{task}/round_{round_index}") \
            if log_dir else None

        def on_log(step, losses, writer=writer):
            if writer:
                with writer.as_default(step=step):
                    tf.summary.scalar(f"loss/{task}", losses[task])

        trainer.global_step = 0
        with progress.stage(f"{task} round {round_index}/{ticket_config.rounds}"):
            fit = trainer.fit(inputs.train, inputs.validation, [task], lambda _: [task],
                              ticket_config.stopping, seed, on_log)
        eval_metric = trainer.evaluate(inputs.evaluation, [task])[task]
        if writer:
            with writer.as_default(step=trainer.global_step):
                for check in fit.checks:
                    tf.summary.scalar(f"validation_auc/{task}", check["validation_auc"][task],
                                      step=check["step"])
                tf.summary.scalar(f"eval_auc/{task}", eval_metric)
                tf.summary.scalar("density", pruning.density(masks))
            writer.close()
        results.append(RoundResult(
            round=round_index, kept=int(sum(m.sum() for m in masks)),
            density=pruning.density(masks), layer_density=[float(m.mean()) for m in masks],
            metric=fit.validation_auc[task], eval_metric=eval_metric,
            epochs_trained=fit.epochs_trained[task], seconds=fit.seconds,
            masks=[m.copy() for m in masks]))
        if on_chosen and _choice(results, ticket_config) is results[-1]:
            on_chosen()
    return results


def _choice(results, ticket_config):
    """`select_round` over the rounds so far, or None while none is selectable."""
    try:
        return select_round(results, ticket_config.min_density, ticket_config.max_density,
                            ticket_config.selection_tolerance)
    except ValueError:
        return None


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


def _metric_name(task):
    """What a task's ticket rounds are chosen by: AUC on its rows."""
    return f"auc (rows: {task.rows})" if task.rows else "auc"


def trained_ticket_prefixes(masks_uri, tasks):
    """{task: `ticket_prefix`} of the tasks among `tasks` whose ticket was trained by the search
    at `masks_uri` (none when it reused masks: `modules/ticket_reuse.py`)."""
    return {task: ticket_prefix(masks_uri, task) for task in tasks
            if tf.io.gfile.exists(ticket_prefix(masks_uri, task) + ".index")}


def _reused_record(config, task, masks):
    """A reused task's report entry: its mask's density, no rounds trained."""
    return {"metric_name": _metric_name(config.spec.task(task)), "selected_on": None,
            "rounds": [], "chosen_round": None, "chosen_density": pruning.density(masks),
            "chosen_metric": None, "chosen_eval_metric": None, "dense_metric": None,
            "dense_eval_metric": None, "mask_file": f"{masks_lib.MASK_DIR}/{task}.npz"}


def run_search(inputs, config, out_uri, log_dir=None, span=None, reuse_from=None):
    """Search every task; write masks (with their provenance), θ0 (and the rewind point), each
    task's chosen round's trained weights, report and plot under `out_uri`.

    Returns the report. Rounds are chosen on validation AUC; eval AUCs are reported only. When
    `ticket_reuse.decide` reuses the masks published by the pushed model at `reuse_from`, no
    round trains: θ0 (and the rewind point) and those masks are written; `report["reuse"]` says
    which, or why the search ran. `span`: the span read (None without spans).
    """
    tasks = config.ticket_tasks()
    network = inputs_lib.build_network(inputs, config, tasks)
    checkpoint = tf.train.Checkpoint(network=network)
    checkpoint.write(theta0_prefix(out_uri))
    trainer = MaskedTrainer(network, inputs.strategy, config)
    if config.ticket.rewind_step:
        rewind_point(trainer, inputs.train, tasks, config.ticket.rewind_step, config.model.seed)
        checkpoint.write(os.path.join(out_uri, REWIND_DIR, "ckpt"))
    decision, reused = ticket_reuse.decide(config, reuse_from, span, network)

    def start():             # read back from disk each round: no copy held in memory
        checkpoint.read(start_prefix(out_uri)).assert_existing_objects_matched()
    report = {"prunable_total": int(sum(int(tf.size(k)) for k in network.prunable_weights())),
              "prunable_layers": [list(k.shape) for k in network.prunable_weights()],
              "keep_per_round": config.ticket.keep_per_round, "seed": config.model.seed,
              "rewind_step": config.ticket.rewind_step, "fields": config.spec.fields(),
              "reuse": decision, "tasks": {}}
    chosen_masks = {}
    for task in tasks:
        if reused:
            chosen_masks[task] = reused[task]
            report["tasks"][task] = _reused_record(config, task, reused[task])
            continue
        results = search_task(trainer, task, inputs, config.ticket, start, config.model.seed,
                              log_dir, on_chosen=functools.partial(checkpoint.write,
                                                          ticket_prefix(out_uri, task)))
        chosen = select_round(results, config.ticket.min_density,
                                            config.ticket.max_density,
                                            config.ticket.selection_tolerance)
        chosen_masks[task] = chosen.masks
        report["tasks"][task] = {
            "metric_name": _metric_name(config.spec.task(task)),
            "selected_on": "validation", "rounds": [r.to_json() for r in results],
            "chosen_round": chosen.round, "chosen_density": chosen.density,
            "chosen_metric": chosen.metric, "chosen_eval_metric": chosen.eval_metric,
            "dense_metric": results[0].metric, "dense_eval_metric": results[0].eval_metric,
            "mask_file": f"{masks_lib.MASK_DIR}/{task}.npz"}
    masks_lib.save(out_uri, chosen_masks, ticket_reuse.provenance(
        config, decision["searched_span"], decision["searched_in"] or out_uri))
    report["overlap"] = pruning.overlap(chosen_masks)
    with tf.io.gfile.GFile(os.path.join(out_uri, REPORT_FILE), "w") as f:
        f.write(json.dumps(report, indent=2, sort_keys=True))
    if not reused:
        plots.pruning_curves(report, os.path.join(out_uri, PLOT_FILE))
    return report
