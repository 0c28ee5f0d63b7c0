"""Executor of BaselineModel: copy the newest pushed version, else the candidate, as the baseline.

A pushed version that lacks an output or label the candidate has (a task added to the spec) cannot
be evaluated beside it: the candidate is then its own baseline too, and a warning says so.
"""
import os

import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import saved_model_pb2
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from modules.serving_dir import newest_version

# Custom properties of the output: where the baseline came from, and why not from the newest
# pushed version when it is not.
SOURCE = "baseline_source"
IS_CANDIDATE = "baseline_is_candidate"
SKIPPED = "baseline_skipped"
# The signatures whose outputs the Evaluator reads from both models.
COMPARED = ("serving_default", "transform_features", "evaluation")


def signature_outputs(model_dir):
    """{signature: set of output keys} of a SavedModel's `COMPARED` signatures."""
    saved = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(model_dir, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    signatures = saved.meta_graphs[0].signature_def
    return {name: set(signatures[name].outputs) for name in COMPARED if name in signatures}


def missing_outputs(candidate_dir, pushed_dir):
    """["signature: key"] the candidate has and the pushed model lacks."""
    pushed = signature_outputs(pushed_dir)
    return sorted(f"{name}: {key}" for name, keys in signature_outputs(candidate_dir).items()
                  for key in keys - pushed.get(name, set()))


class Executor(base_executor.BaseExecutor):
    """Writes `baseline_model/Format-Serving/` from `serving_dir`'s newest version or the candidate."""

    def Do(self, input_dict, output_dict, exec_properties):
        candidate = artifact_utils.get_single_instance(input_dict["model"])
        baseline = artifact_utils.get_single_instance(output_dict["baseline_model"])
        candidate_dir = path_utils.serving_model_path(candidate.uri)
        pushed = newest_version(exec_properties["serving_dir"])
        missing = missing_outputs(candidate_dir, pushed) if pushed else []
        if missing:
            reason = (f"the newest pushed model {pushed} lacks {missing} (the spec's outputs "
                      f"changed): no regression gate this run, only the lower bounds")
            logging.warning("BaselineModel: %s", reason)
            baseline.set_string_custom_property(SKIPPED, reason)
            pushed = None
        source = pushed or candidate_dir
        io_utils.copy_dir(source, path_utils.serving_model_dir(baseline.uri))
        baseline.set_string_custom_property(SOURCE, source)
        baseline.set_int_custom_property(IS_CANDIDATE, int(pushed is None))
