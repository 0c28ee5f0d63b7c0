"""MTLTrainer executor: masked multi-task training, evaluation on the eval split, export."""
import json
import os

import tensorflow as tf
import tensorflow_transform as tft
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.ticket_search.executor import start_prefix, ticket_prefix
from modules import export
from modules import inputs as inputs_lib
from modules import masks as masks_lib
from modules import mtl, pruning
from modules import tasks as task_lib
from pipeline.config import Config

REPORT_FILE = "training_report.json"


class Executor(base_executor.BaseExecutor):
    """Trains through the TaskMasks from θ0, writes metrics, exports `Format-Serving`."""

    def Do(self, input_dict, output_dict, exec_properties):
        config = Config.from_json(exec_properties["config"])
        masks_uri = artifact_utils.get_single_uri(input_dict["masks"])
        transform_uri = artifact_utils.get_single_uri(input_dict["transform_graph"])
        model_artifact = artifact_utils.get_single_instance(output_dict["model"])
        run_dir = artifact_utils.get_single_uri(output_dict["model_run"])
        inputs = inputs_lib.load(artifact_utils.get_single_uri(input_dict["examples"]),
                                 transform_uri, config, devices=config.model.devices)
        tickets = masks_lib.load(masks_uri)
        report = train_and_export(inputs, config, tickets, start_prefix(masks_uri),
                                  tft.TFTransformOutput(transform_uri),
                                  path_utils.serving_model_path(model_artifact.uri), run_dir,
                                  {task: ticket_prefix(masks_uri, task) for task in tickets})
        for name, value in report["eval_auc"].items():
            model_artifact.set_float_custom_property(f"{name}_auc", value)


def train_and_export(inputs, config, ticket_masks, start, tft_output, serving_path, run_dir,
                     ticket_prefixes):
    """Train (early stopping on validation), guard against negative transfer (each task against
    its ticket at `ticket_prefixes[task]`), evaluate on validation and eval, export; write and
    return the training report (its AUCs are those of the model exported)."""
    writer = tf.summary.create_file_writer(os.path.join(run_dir, "mtl"))

    def on_log(step, losses):
        with writer.as_default(step=step):
            for task, loss in losses.items():
                tf.summary.scalar(f"loss/{task}", loss)

    network, trainer, task_masks, fit = mtl.train(inputs, config, ticket_masks, start,
                                                  on_log=on_log)
    transfer = mtl.guard_negative_transfer(trainer, inputs, config, ticket_masks, ticket_prefixes)
    validation = mtl.metrics(trainer, inputs.validation)
    evaluation = mtl.metrics(trainer, inputs.evaluation)
    reference = trainer.metrics(inputs.evaluation,
                                [task_lib.PCTR_REFERENCE])[task_lib.PCTR_REFERENCE]["auc"]
    with writer.as_default(step=trainer.global_step):
        for check in fit.checks:
            for name, value in check["validation_auc"].items():
                tf.summary.scalar(f"validation_auc/{name}", value, step=check["step"])
        for name, value in evaluation["auc"].items():
            tf.summary.scalar(f"eval_auc/{name}", value)
    writer.close()
    export.export(network, task_masks, tft_output, serving_path, trainer.served)
    report = {"eval_auc": evaluation["auc"], "eval_calibration": evaluation["calibration"],
              "eval_auc_max_error": evaluation["auc_max_error"],
              "validation_auc": validation["auc"],
              "validation_calibration": validation["calibration"],
              "early_stopping": fit.to_json(), "epochs_trained": fit.epochs_trained,
              "negative_transfer": transfer,
              "pctr_reference_auc": reference,
              "steps": trainer.global_step, "masks": config.mtl.masks,
              "density": {t: pruning.density(m) for t, m in task_masks.items()},
              "eval_rows": inputs.evaluation.num_rows, "train_rows": inputs.train.num_rows,
              "validation_rows": inputs.validation.num_rows,
              "embedding_tables": inputs.table_memory}
    tf.io.gfile.makedirs(run_dir)
    with tf.io.gfile.GFile(os.path.join(run_dir, REPORT_FILE), "w") as f:
        f.write(json.dumps(report, indent=2, sort_keys=True))
    return report
