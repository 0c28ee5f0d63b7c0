"""Executor of Evaluator: TFX's Evaluator, without a baseline when the baseline is the candidate.

BaselineModel hands on the candidate itself when nothing comparable has been pushed (a first run,
or a pushed model lacking one of the candidate's outputs) and marks it `baseline_is_candidate`.
Evaluating that copy would run TFMA over the eval split twice to compare a model with itself.
This executor drops such a baseline before TFX's executor runs, which then does what TFX does
when no baseline resolves: one model evaluated, the change thresholds skipped (`rubber_stamp`),
the absolute bounds gating.
"""
from absl import logging
from tfx.components.evaluator import executor as tfx_evaluator
from tfx.types import standard_component_specs

from components.baseline_model.executor import IS_CANDIDATE

BASELINE = standard_component_specs.BASELINE_MODEL_KEY


def without_self_baseline(input_dict):
    """`input_dict` without its baseline model if that baseline is the candidate itself."""
    if not any(b.get_int_custom_property(IS_CANDIDATE) for b in input_dict.get(BASELINE, [])):
        return input_dict
    logging.info("Evaluator: the baseline is the candidate itself; evaluating the candidate "
                 "once, gated by the absolute bounds only")
    return {key: value for key, value in input_dict.items() if key != BASELINE}


class Executor(tfx_evaluator.Executor):
    """TFX's Evaluator executor on `without_self_baseline(input_dict)`."""

    def Do(self, input_dict, output_dict, exec_properties):
        super().Do(without_self_baseline(input_dict), output_dict, exec_properties)
