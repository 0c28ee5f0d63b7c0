"""Malformed input logs stop the run before Transform, with a message naming the file or feature.

Records breaking a row check of the schema are dropped and counted up to
`checks.max_dropped_fraction`; these cases break more, and stop the day.

Each case runs `lt4rec run` on tiny data (300 rows) and checks: exit code, message, that nothing
after the failing step ran, and that nothing was pushed. Tolerated inputs (non-UTF-8 keywords,
long lists at serving time) are tested in test_crash_recovery.py / test_serving_fuzz.py.
"""
import math
import os

import pytest

from modules import features, streaming_metrics, tasks
from modules.config import Config
from reliability import helpers

SPEC = Config().spec

pytestmark = pytest.mark.e2e


def _every(n, name, kind, values):
    def edit(i, example, split):
        if i % n == 0:
            helpers.set_feature(example, name, kind, values)
    return edit


def _drop_uid_sometimes(i, example, split):
    if i % 7 == 0:
        del example.features.feature["FEA_UID"]


def _eval_never_clicked(i, example, split):
    if split == "eval":
        helpers.set_feature(example, "label", "int64_list", [0])
        helpers.set_feature(example, "cvrlabel", "float_list", [0.0])


ANOMALIES = {
    # A third of the rows (over checks.max_dropped_fraction) break a row check: ExampleGen stops
    # the day naming the feature and the reason (fewer are dropped and counted:
    # tests/test_data_validation.py).
    "wrong type (int64 id)": (_every(3, "FEA_VID", "int64_list", [5]), False, "ImportExampleGen",
                              ["FEA_VID: wrong type (int64_list, the schema has bytes_list)"]),
    "required feature missing": (_drop_uid_sometimes, False, "ImportExampleGen",
                                 ["FEA_UID: missing"]),
    "label outside {0,1}": (_every(3, "label", "int64_list", [2]), False, "ImportExampleGen",
                            ["label: outside its domain [0, 1]"]),
    "NaN cvrlabel": (_every(3, "cvrlabel", "float_list", [math.nan]), False, "ImportExampleGen",
                     ["cvrlabel: NaN"]),
    "inf cvrlabel": (_every(3, "cvrlabel", "float_list", [math.inf]), False, "ImportExampleGen",
                     ["cvrlabel: infinite"]),
    "negative cvrlabel": (_every(3, "cvrlabel", "float_list", [-0.5]), False, "ImportExampleGen",
                          ["cvrlabel: outside its domain [0, 1]"]),
    "1,000-long keyword list": (
        _every(3, "FEA_IKEYWORD", "bytes_list", [b"k%d" % i for i in range(1000)]), False,
        "ImportExampleGen", ["FEA_IKEYWORD: more than"]),
    "eval split with one class": (_eval_never_clicked, True, "StrictExampleValidator",
                                  ["split 'eval': feature 'label': single class"]),
}


def _assert_stopped_before_transform(root, err, node):
    assert f"pipeline run failed in {node}" in err
    assert not os.path.exists(root / "pipeline" / "Transform")
    assert not os.path.exists(root / "serving")


@pytest.mark.parametrize("case", sorted(ANOMALIES))
def test_bad_examples_stop_the_run_naming_the_feature(tmp_path, capsys, case):
    edit, splits, node, expected = ANOMALIES[case]
    data = helpers.edited_dataset(tmp_path, edit, splits=splits)
    code, err = helpers.run_cli(capsys, data, tmp_path / "root", helpers.config_file(tmp_path))
    assert code == 1
    for text in expected:
        assert text in err, err[-2000:]
    _assert_stopped_before_transform(tmp_path / "root", err, node)


def _truncate(data):
    return data[:len(data) // 2]


def _flip_bytes(data):
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + data[middle + 64:]


@pytest.mark.parametrize("damage, reason", [(_truncate, "truncated record"),
                                            (_flip_bytes, "incorrect data check")],
                         ids=["truncated", "corrupt"])
def test_damaged_gzip_file_stops_the_run_naming_the_file(tmp_path, capsys, damage, reason):
    from pipeline import synthetic_data
    data = tmp_path / "data"
    good, bad = synthetic_data.write_dataset(str(data), rows=300, seed=5, shards=2)
    with open(bad, "rb") as f:
        content = f.read()
    with open(bad, "wb") as f:
        f.write(damage(content))
    code, err = helpers.run_cli(capsys, data, tmp_path / "root", helpers.config_file(tmp_path))
    assert code == 1
    assert f"input file {bad} is not a readable TFRecord" in err and reason in err, err[-2000:]
    assert good not in err
    _assert_stopped_before_transform(tmp_path / "root", err, "ImportExampleGen")


@pytest.mark.parametrize("layout", ["empty", "only subdirectories", "given split missing files"])
def test_input_directory_without_files_is_refused_before_anything_runs(tmp_path, capsys, layout):
    data = tmp_path / "data"
    data.mkdir()
    expected = "'*'"
    if layout == "only subdirectories":
        (data / "train").mkdir()
    if layout == "given split missing files":
        helpers.write_examples(str(data / "train" / "part.tfrecord.gz"), [])
        (data / "eval").mkdir()
        expected = "'eval/*'"
    code, err = helpers.run_cli(capsys, data, tmp_path / "root", helpers.config_file(tmp_path))
    assert code == 2
    assert f"--data '{data}' has no input files matching {expected}" in err
    assert not os.path.exists(tmp_path / "root" / "metadata.sqlite")


def test_cvr_eval_rows_without_a_conversion_stop_the_trainer_with_a_clear_error():
    """No conversion among the clicked eval rows: CVR AUC is undefined; TicketSearch and
    MTLTrainer raise MetricUndefinedError (not a label the validator can see in statistics)."""
    arrays = {features.LABEL: [1, 1, 0, 0], features.CONVERSION: [0.0, 0.0, 0.0, 0.0]}
    with pytest.raises(tasks.MetricUndefinedError, match="CVR AUC is undefined"):
        tasks.auc(SPEC, "cvr", arrays, [0.1, 0.2, 0.3, 0.4])
    histogram = streaming_metrics.ScoreHistogram()      # what the trainers compute
    labels, rows = tasks.eval_rows(SPEC, "cvr", arrays)
    histogram.update(labels, [0.1, 0.2, 0.3, 0.4], rows)
    with pytest.raises(tasks.MetricUndefinedError, match=r"CVR AUC is undefined.*\(2 rows\)"):
        tasks.defined_auc("cvr", histogram.result())
    assert tasks.auc(SPEC, "ctr", {features.LABEL: [1, 0, 1, 0]}, [0.9, 0.1, 0.8, 0.2]) == 1.0
