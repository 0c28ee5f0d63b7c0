"""BaselineModel's executor: newest pushed version, else the candidate, copied as the baseline."""
import os

import pytest
from tfx.types import standard_artifacts

from components.baseline_model import executor


def _model(path, content):
    os.makedirs(path)
    with open(os.path.join(path, "saved_model.pb"), "w") as f:
        f.write(content)


def _run(tmp_path, serving_dir):
    candidate = standard_artifacts.Model()
    candidate.uri = str(tmp_path / "candidate")
    _model(os.path.join(candidate.uri, "Format-Serving"), "candidate")
    baseline = standard_artifacts.Model()
    baseline.uri = str(tmp_path / "baseline")
    executor.Executor().Do({"model": [candidate]}, {"baseline_model": [baseline]},
                           {"serving_dir": str(serving_dir)})
    with open(os.path.join(baseline.uri, "Format-Serving", "saved_model.pb")) as f:
        return baseline, f.read()


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
