"""Executor of BaselineModel: copy the newest pushed version, else the candidate, as the baseline."""
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components.atomic_pusher.executor import newest_version

# Custom properties of the output: where the baseline came from.
SOURCE = "baseline_source"
IS_CANDIDATE = "baseline_is_candidate"


class Executor(base_executor.BaseExecutor):
    """Writes `baseline_model/Format-Serving/` from `serving_dir`'s newest version or the candidate."""

    def Do(self, input_dict, output_dict, exec_properties):
        candidate = artifact_utils.get_single_instance(input_dict["model"])
        baseline = artifact_utils.get_single_instance(output_dict["baseline_model"])
        pushed = newest_version(exec_properties["serving_dir"])
        source = pushed or path_utils.serving_model_path(candidate.uri)
        io_utils.copy_dir(source, path_utils.serving_model_dir(baseline.uri))
        baseline.set_string_custom_property(SOURCE, source)
        baseline.set_int_custom_property(IS_CANDIDATE, int(pushed is None))
