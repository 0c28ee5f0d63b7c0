"""Executor of Evaluator: TFX's Evaluator, without a baseline when the baseline is the candidate,
gated by the run's gate values.

BaselineModel hands on the candidate itself when nothing comparable has been pushed (a first run,
or a pushed model lacking one of the candidate's outputs) and marks it `baseline_is_candidate`.
Evaluating that copy would run TFMA over the eval split twice to compare a model with itself.
This executor drops such a baseline before TFX's executor runs, which then does what TFX does
when no baseline resolves: one model evaluated, the change thresholds skipped (`rubber_stamp`),
the absolute bounds gating.

Given the config (`config_json`) the EvalConfig is rebuilt from it with the gate values of the
execution (`auc_lower_bound`, `max_auc_regression`, `gates_json`: run parameters on Kubeflow,
so a run may raise or lower a gate without recompiling; the config's own values otherwise).
"""
from absl import logging
from tfx.components.evaluator import executor as tfx_evaluator
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.baseline_model.executor import IS_CANDIDATE
from modules.evaluation import eval_config, gated_config

BASELINE = standard_component_specs.BASELINE_MODEL_KEY
CONFIG_KEY = "config_json"
GATES_KEY = "gates_json"


def without_self_baseline(input_dict):
    """`input_dict` without its baseline model if that baseline is the candidate itself."""
    if not any(b.get_int_custom_property(IS_CANDIDATE) for b in input_dict.get(BASELINE, [])):
        return input_dict
    logging.info("Evaluator: the baseline is the candidate itself; evaluating the candidate "
                 "once, gated by the absolute bounds only")
    return {key: value for key, value in input_dict.items() if key != BASELINE}


def with_run_gates(exec_properties):
    """`exec_properties` with the EvalConfig built from `config_json` and the execution's gate
    values (unchanged without `config_json`); ConfigError naming a run parameter that is
    invalid."""
    if not exec_properties.get(CONFIG_KEY):
        return exec_properties
    config = gated_config(exec_properties[CONFIG_KEY], exec_properties.get("auc_lower_bound"),
                          exec_properties.get("max_auc_regression"),
                          exec_properties.get(GATES_KEY))
    gates = {name: config.gate(name) for name in config.spec.output_names()}
    logging.info("Evaluator: gates (AUC lower bound, allowed AUC regression) %s",
                 {name: gate for name, gate in gates.items() if gate})
    return dict(exec_properties, eval_config=proto_utils.proto_to_json(eval_config(config)))


class Executor(tfx_evaluator.Executor):
    """TFX's Evaluator executor on `without_self_baseline(input_dict)` and
    `with_run_gates(exec_properties)`."""

    def Do(self, input_dict, output_dict, exec_properties):
        super().Do(without_self_baseline(input_dict), output_dict,
                   with_run_gates(exec_properties))
