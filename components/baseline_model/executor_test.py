"""BaselineModel's executor: newest pushed version, else the candidate, copied as the baseline."""
import os

import pytest
from tensorflow.core.protobuf import saved_model_pb2
from tfx.types import standard_artifacts

from components.baseline_model import executor

OUTPUTS = {"serving_default": ["ctr", "cvr", "ctcvr"],
           "transform_features": ["label", "conversion"]}


def _model(path, content, outputs=None):
    """A SavedModel proto (signatures only) tagged with `content` as its first signature."""
    saved = saved_model_pb2.SavedModel()
    signatures = saved.meta_graphs.add().signature_def
    signatures[content].method_name = "tag"
    for name, keys in (outputs or OUTPUTS).items():
        for key in keys:
            signatures[name].outputs[key].name = f"{key}:0"
    os.makedirs(path)
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(saved.SerializeToString())


def _content(path):
    return next(name for name, signature in _signatures(path).items()
                if signature.method_name == "tag")


def _signatures(path):
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    return saved.meta_graphs[0].signature_def


def _run(tmp_path, serving_dir, outputs=None):
    candidate = standard_artifacts.Model()
    candidate.uri = str(tmp_path / "candidate")
    _model(os.path.join(candidate.uri, "Format-Serving"), "candidate", outputs)
    baseline = standard_artifacts.Model()
    baseline.uri = str(tmp_path / "baseline")
    executor.Executor().Do({"model": [candidate]}, {"baseline_model": [baseline]},
                           {"serving_dir": str(serving_dir)})
    return baseline, _content(os.path.join(baseline.uri, "Format-Serving"))


def test_the_newest_numeric_version_is_the_baseline(tmp_path):
    serving = tmp_path / "serving"
    for name in ("2", "10", ".incomplete-11"):
        _model(str(serving / name), name)
    baseline, content = _run(tmp_path, serving)
    assert content == "10"                       # numeric order, incomplete pushes ignored
    assert baseline.get_string_custom_property(executor.SOURCE) == str(serving / "10")
    assert baseline.get_int_custom_property(executor.IS_CANDIDATE) == 0


@pytest.mark.parametrize("create", [False, True], ids=["missing", "empty"])
def test_without_a_pushed_version_the_candidate_is_its_own_baseline(tmp_path, create):
    serving = tmp_path / "serving"
    if create:
        serving.mkdir()
    baseline, content = _run(tmp_path, serving)
    assert content == "candidate"
    assert baseline.get_int_custom_property(executor.IS_CANDIDATE) == 1


def test_a_pushed_model_without_the_candidates_outputs_is_no_baseline(tmp_path):
    """A task added to the spec: the pushed model cannot be evaluated beside the candidate, so
    the candidate is its own baseline (only the lower bounds gate) and the reason is recorded."""
    serving = tmp_path / "serving"
    _model(str(serving / "3"), "3")
    grown = {**OUTPUTS, "serving_default": OUTPUTS["serving_default"] + ["finish"],
             "transform_features": OUTPUTS["transform_features"] + ["finish_label"]}
    baseline, content = _run(tmp_path, serving, grown)
    assert content == "candidate"
    assert baseline.get_int_custom_property(executor.IS_CANDIDATE) == 1
    reason = baseline.get_string_custom_property(executor.SKIPPED)
    assert "['serving_default: finish', 'transform_features: finish_label']" in reason


def test_a_candidate_with_fewer_outputs_keeps_the_pushed_baseline(tmp_path):
    serving = tmp_path / "serving"
    _model(str(serving / "3"), "3")
    fewer = {**OUTPUTS, "serving_default": ["ctr", "cvr"]}
    baseline, content = _run(tmp_path, serving, fewer)
    assert content == "3" and not baseline.get_string_custom_property(executor.SKIPPED)
