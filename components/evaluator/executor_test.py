"""Evaluator's executor drops a baseline that is the candidate itself, and only that one (its
whole run is in tests/test_pipeline_e2e.py and tests/test_kubeflow_backend.py)."""
from tfx.types import standard_artifacts

from components.baseline_model.executor import IS_CANDIDATE
from components.evaluator.executor import BASELINE, without_self_baseline


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
