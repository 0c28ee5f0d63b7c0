"""MTLTrainer executor: reads its inputs, runs `mtl.train_and_export`, writes properties."""
import tensorflow_transform as tft
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from modules import inputs as inputs_lib
from modules import masks as masks_lib
from modules import mtl, warm_start
from modules.config import Config
from modules.ticket_search import start_prefix, trained_ticket_prefixes


class Executor(base_executor.BaseExecutor):
    """Trains (through the TaskMasks from θ0 for LT4REC), writes metrics, exports
    `Format-Serving`."""

    def Do(self, input_dict, output_dict, exec_properties):
        config = Config.from_json(exec_properties["config"])
        masks_uri = artifact_utils.get_single_uri(input_dict["masks"]) \
            if input_dict.get("masks") else None
        transform_uri = artifact_utils.get_single_uri(input_dict["transform_graph"])
        model_artifact = artifact_utils.get_single_instance(output_dict["model"])
        run_dir = artifact_utils.get_single_uri(output_dict["model_run"])
        inputs = inputs_lib.load(artifact_utils.get_single_uri(input_dict["examples"]),
                                 transform_uri, config, devices=config.model.devices)
        tickets = masks_lib.load(masks_uri) if masks_uri else {}
        report = mtl.train_and_export(
            inputs, config, tickets, start_prefix(masks_uri) if masks_uri else None,
            tft.TFTransformOutput(transform_uri),
            path_utils.serving_model_path(model_artifact.uri), run_dir,
            trained_ticket_prefixes(masks_uri, tickets) if masks_uri else {},
            warm_start.newest(exec_properties.get("warm_start_from")),
            masks_lib.load_provenance(masks_uri) if masks_uri else None)
        for name, value in report["eval_auc"].items():
            model_artifact.set_float_custom_property(f"{name}_auc", value)
