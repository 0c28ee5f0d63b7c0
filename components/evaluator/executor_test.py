"""Evaluator's executor drops a baseline that is the candidate itself, and only that one, and
gates by the run's gate values (its whole run is in tests/test_pipeline_e2e.py and
tests/test_kubeflow_backend.py)."""
import pytest
import tensorflow_model_analysis as tfma
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.baseline_model.executor import IS_CANDIDATE
from components.evaluator.executor import (BASELINE, CONFIG_KEY, GATES_KEY, with_run_gates,
                                           without_self_baseline)
from modules.config import Config, ConfigError


def model(uri, is_candidate=None):
    artifact = standard_artifacts.Model()
    artifact.uri = uri
    if is_candidate is not None:
        artifact.set_int_custom_property(IS_CANDIDATE, is_candidate)
    return artifact


def test_a_baseline_that_is_the_candidate_is_dropped():
    inputs = {"model": [model("/candidate")], BASELINE: [model("/copy", is_candidate=1)],
              "examples": []}
    assert without_self_baseline(inputs) == {"model": inputs["model"], "examples": []}
    assert BASELINE in inputs                                 # the caller's dict is untouched


def test_a_pushed_baseline_or_none_is_kept():
    pushed = {"model": [model("/candidate")], BASELINE: [model("/serving/1", is_candidate=0)]}
    assert without_self_baseline(pushed) is pushed
    unmarked = {"model": [model("/candidate")], BASELINE: [model("/elsewhere")]}
    assert without_self_baseline(unmarked) is unmarked
    assert without_self_baseline({"model": []}) == {"model": []}


def _bounds(exec_properties):
    """{output: (AUC lower bound, allowed AUC drop)} of the gated outputs of the EvalConfig."""
    config = proto_utils.json_to_proto(exec_properties["eval_config"], tfma.EvalConfig())
    gates = {}
    for spec in config.metrics_specs:
        for metric in spec.metrics:
            for threshold in metric.per_slice_thresholds:
                gates[spec.output_names[0]] = (
                    round(threshold.threshold.value_threshold.lower_bound.value, 6),
                    round(-threshold.threshold.change_threshold.absolute.value, 6))
    return gates


def _properties(**gates):
    config = Config.from_dict({"evaluation": {
        "auc_lower_bound": 0.55, "max_auc_regression": 0.01,
        "gates": {"cvr": {"auc_lower_bound": 0.6}}}})
    return {"eval_config": "{}", CONFIG_KEY: config.to_json(("spec", "evaluation")), **gates}


def test_the_eval_config_is_built_from_the_config_and_the_runs_gate_values():
    assert with_run_gates({"eval_config": "{}"}) == {"eval_config": "{}"}   # no config: as given
    assert _bounds(with_run_gates(_properties())) == {"ctr": (0.55, 0.01), "cvr": (0.6, 0.01)}
    # The default bounds move every task without an own entry; `gates` replaces the entries.
    assert _bounds(with_run_gates(_properties(auc_lower_bound=0.7, max_auc_regression=0.0))) \
        == {"ctr": (0.7, 0.0), "cvr": (0.6, 0.0)}
    assert _bounds(with_run_gates(_properties(
        **{GATES_KEY: '{"ctcvr": {"auc_lower_bound": 0.5, "max_auc_regression": 0.02}}'}))) \
        == {"ctr": (0.55, 0.01), "cvr": (0.55, 0.01), "ctcvr": (0.5, 0.02)}


@pytest.mark.parametrize("gates, message", [
    ({"auc_lower_bound": 1.5}, "evaluation.auc_lower_bound.*run parameters auc_lower_bound"),
    ({GATES_KEY: "{cvr: 0.6"}, "invalid run parameter gates: not JSON"),
    ({GATES_KEY: '{"click": {"auc_lower_bound": 0.6}}'}, "evaluation.gates.*click.*is not a "
                                                          "task or product"),
    ({GATES_KEY: '{"cvr": {"auc_lower_bound": -1}}'}, "evaluation.gates.cvr.auc_lower_bound"),
])
def test_invalid_gate_values_are_refused_naming_the_setting(gates, message):
    with pytest.raises(ConfigError, match=message):
        with_run_gates(_properties(**gates))
