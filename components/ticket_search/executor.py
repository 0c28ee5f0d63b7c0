"""TicketSearch executor: run the search for every task, pick each task's round, write artifacts."""
import json
import os

import tensorflow as tf
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from modules import inputs as inputs_lib
from modules import masks as masks_lib
from modules import plots, pruning, ticket_search
from modules.training import MaskedTrainer, restore, snapshot
from pipeline.config import Config

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


class Executor(base_executor.BaseExecutor):
    """Runs `ticket_search.search_task` per task from one θ0 and stores masks as `.npz`."""

    def Do(self, input_dict, output_dict, exec_properties):
        config = Config.from_json(exec_properties["config"])
        masks_artifact = artifact_utils.get_single_instance(output_dict["masks"])
        log_dir = artifact_utils.get_single_uri(output_dict["model_run"])
        inputs = inputs_lib.load(artifact_utils.get_single_uri(input_dict["examples"]),
                                 artifact_utils.get_single_uri(input_dict["transform_graph"]),
                                 config, devices=config.model.devices)
        report = run_search(inputs, config, masks_artifact.uri, log_dir)
        for task, result in report["tasks"].items():
            masks_artifact.set_float_custom_property(f"{task}_density", result["chosen_density"])
            masks_artifact.set_float_custom_property(f"{task}_metric", result["chosen_metric"])
        masks_artifact.set_float_custom_property("overlap_jaccard", report["overlap"]["jaccard"])


def run_search(inputs, config, out_uri, log_dir=None):
    """Search every task; write masks, θ0 (and the rewind point), each task's chosen round's
    trained weights, report and plot under `out_uri`.

    Returns the report. Rounds are chosen on validation AUC; eval AUCs are reported only.
    """
    tasks = config.ticket.tasks
    network = inputs_lib.build_network(inputs, config, tasks)
    checkpoint = tf.train.Checkpoint(network=network)
    checkpoint.write(theta0_prefix(out_uri))
    trainer = MaskedTrainer(network, inputs.strategy, config.model)
    start = snapshot(network)
    if config.ticket.rewind_step:
        start = ticket_search.rewind_point(trainer, inputs.train, tasks, config.ticket.rewind_step,
                                           config.model.seed)
        checkpoint.write(os.path.join(out_uri, REWIND_DIR, "ckpt"))
    report = {"prunable_total": int(sum(int(tf.size(k)) for k in network.prunable_weights())),
              "prunable_layers": [list(k.shape) for k in network.prunable_weights()],
              "keep_per_round": config.ticket.keep_per_round, "seed": config.model.seed,
              "rewind_step": config.ticket.rewind_step, "tasks": {}}
    chosen_masks = {}
    for task in tasks:
        results = ticket_search.search_task(trainer, task, inputs, config.ticket, start,
                                            config.model.seed, log_dir)
        chosen = ticket_search.select_round(results, config.ticket.min_density,
                                            config.ticket.max_density,
                                            config.ticket.selection_tolerance)
        chosen_masks[task] = chosen.masks
        restore(network, chosen.weights)
        checkpoint.write(ticket_prefix(out_uri, task))
        report["tasks"][task] = {
            "metric_name": "auc" if task == "ctr" else "auc_clicked",
            "selected_on": "validation", "rounds": [r.to_json() for r in results],
            "chosen_round": chosen.round, "chosen_density": chosen.density,
            "chosen_metric": chosen.metric, "chosen_eval_metric": chosen.eval_metric,
            "dense_metric": results[0].metric, "dense_eval_metric": results[0].eval_metric,
            "mask_file": f"{masks_lib.MASK_DIR}/{task}.npz"}
    masks_lib.save(out_uri, chosen_masks)
    if len(tasks) >= 2:
        report["overlap"] = pruning.overlap(chosen_masks[tasks[0]], chosen_masks[tasks[1]])
        report["overlap"]["tasks"] = tasks[:2]
    else:
        report["overlap"] = {"jaccard": 1.0, "tasks": tasks}
    with tf.io.gfile.GFile(os.path.join(out_uri, REPORT_FILE), "w") as f:
        f.write(json.dumps(report, indent=2, sort_keys=True))
    plots.pruning_curves(report, os.path.join(out_uri, PLOT_FILE))
    return report
