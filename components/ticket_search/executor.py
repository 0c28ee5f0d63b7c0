"""TicketSearch executor: reads its inputs (and the span ExampleGen read), runs
`ticket_search.run_search`, writes properties."""
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.split_example_gen import spans
from modules import inputs as inputs_lib
from modules import ticket_search
from modules.config import Config


class Executor(base_executor.BaseExecutor):
    """Runs `ticket_search.search_task` per task from one θ0 and stores masks as `.npz`."""

    def Do(self, input_dict, output_dict, exec_properties):
        config = Config.from_json(exec_properties["config"])
        masks_artifact = artifact_utils.get_single_instance(output_dict["masks"])
        log_dir = artifact_utils.get_single_uri(output_dict["model_run"])
        inputs = inputs_lib.load(artifact_utils.get_single_uri(input_dict["examples"]),
                                 artifact_utils.get_single_uri(input_dict["transform_graph"]),
                                 config, devices=config.model.devices)
        raw = input_dict.get("raw_examples")
        report = ticket_search.run_search(inputs, config, masks_artifact.uri, log_dir,
                                          spans.span_of(raw[0] if raw else None),
                                          exec_properties.get("reuse_from"))
        for task, result in report["tasks"].items():
            masks_artifact.set_float_custom_property(f"{task}_density", result["chosen_density"])
            if result["chosen_metric"] is not None:
                masks_artifact.set_float_custom_property(f"{task}_metric",
                                                         result["chosen_metric"])
        masks_artifact.set_float_custom_property("overlap_jaccard", report["overlap"]["jaccard"])
        masks_artifact.set_int_custom_property("masks_reused", int(report["reuse"]["reused"]))
