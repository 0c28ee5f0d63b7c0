"""Data checks before Transform (`checks`): records breaking the schema's row checks are dropped
and counted, and stop the day above `checks.max_dropped_fraction`; anomalies of the classes
configured to warn let the run push, the others stop it at StrictExampleValidator, naming the
feature."""
import json
import os
import re
import subprocess

import pytest

from reliability import helpers

pytestmark = pytest.mark.e2e
OUT_OF_DOMAIN = "cvrlabel: outside its domain [0, 1]"


def _new_column_and_bad_cvrlabel(every):
    """Every record gets a column the schema lacks; every `every`-th (by index) a cvrlabel of 1.7
    (the original logs' completion rates above 1)."""
    def edit(i, example, split):
        helpers.set_feature(example, "FEA_UPSTREAM_NEW", "bytes_list", [b"x"])
        if i % every == 0:
            helpers.set_feature(example, "cvrlabel", "float_list", [1.7])
    return edit


def test_a_new_column_warns_and_two_percent_bad_labels_are_dropped_and_the_run_pushes(tmp_path):
    """Run as a user does (`make run`, output not a TTY; `-o` keeps make from rebuilding the
    installed .venv), which also checks the quiet console: under 60 lines, one per step,
    warnings in full, library logs in the file."""
    data = helpers.edited_dataset(tmp_path, _new_column_and_bad_cvrlabel(50), rows=400)
    root = tmp_path / "root"
    run = subprocess.run(
        ["make", "-o", ".venv/.installed", "run", f"ROOT={root}",
         f"RUN_ARGS=--data {data} --config {helpers.config_file(tmp_path)}"],
        cwd=helpers.REPO, capture_output=True, text=True, check=False,
        env={k: v for k, v in os.environ.items()            # as a user's top-level make
             if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")})
    console = run.stdout + run.stderr
    assert run.returncode == 0, console[-3000:]
    summary = json.loads((root / "summary.json").read_text())
    assert summary["rows_read"] == 400
    assert summary["dropped_rows"] == {OUT_OF_DOMAIN: 8}
    assert [w for w in summary["data_warnings"] if "'FEA_UPSTREAM_NEW'" in w
            and "[new_column]" in w]
    assert summary["pushed_model"] and os.listdir(root / "serving")
    assert f"dropped 8 of 400 rows failing the schema's row checks: {OUT_OF_DOMAIN}: 8" \
        in console
    assert "data warning: split 'train': feature 'FEA_UPSTREAM_NEW'" in console
    assert f"WARNING: ExampleGen dropped 8 of 400 records (2.00%): {OUT_OF_DOMAIN}" in console
    lines = console.splitlines()
    assert len(lines) < 60, console
    # (a step running over a minute also prints its progress on a line of its own)
    steps = [line.split()[0] for line in lines if re.match(r"^\w+ +\d+ s\b", line)]
    assert list(dict.fromkeys(steps)) == ["ImportExampleGen", "ImportSchemaGen", "StatisticsGen",
                     "StrictExampleValidator", "Transform", "TicketSearch", "MTLTrainer",
                     "BaselineModel", "Evaluator", "AtomicPusher"], console
    assert re.search(r"^MTLTrainer +\d+ s +epoch [\d.]+: validation AUC ctr 0\.\d+, cvr",
                     console, re.M), console
    assert "INFO" not in console and "tensorflow" not in console, console
    (log,) = (root / "logs").iterdir()
    assert "Component AtomicPusher is finished." in log.read_text()


def test_thirty_percent_bad_labels_stop_the_day_naming_the_feature(tmp_path, capsys):
    data = helpers.edited_dataset(
        tmp_path, lambda i, example, split: i % 10 < 3 and helpers.set_feature(
            example, "cvrlabel", "float_list", [1.7]))
    code, err = helpers.run_cli(capsys, data, tmp_path / "root", helpers.config_file(tmp_path))
    assert code == 1
    assert "pipeline run failed in ImportExampleGen: DroppedRowsError: 90 of the 300 records" \
        in err and f"{OUT_OF_DOMAIN}: 90 rows (30.0%)" in err, err[-3000:]
    assert not os.path.exists(tmp_path / "root" / "pipeline" / "StatisticsGen")
    assert not os.path.exists(tmp_path / "root" / "serving")


def test_a_new_column_blocks_when_configured_to(tmp_path, capsys):
    data = helpers.edited_dataset(tmp_path, _new_column_and_bad_cvrlabel(10 ** 9))
    config = helpers.config_file(tmp_path, checks={"anomalies": {"new_column": "block"}})
    code, err = helpers.run_cli(capsys, data, tmp_path / "root", config)
    assert code == 1
    assert "pipeline run failed in StrictExampleValidator: DataAnomaliesError" in err
    assert "feature 'FEA_UPSTREAM_NEW': New column" in err and "[new_column]" in err, err[-3000:]
    assert not os.path.exists(tmp_path / "root" / "pipeline" / "Transform")


def _drop_label(i, example, split):
    del example.features.feature["label"]


def _label_as_bytes(i, example, split):
    helpers.set_feature(example, "label", "bytes_list", [b"1"])


@pytest.mark.parametrize("edit, expected", [
    (_drop_label, "label: missing: 300 rows (100.0%)"),
    (_label_as_bytes, "label: wrong type (bytes_list, the schema has int64_list): 300 rows"),
], ids=["label column missing", "label column as bytes"])
def test_a_whole_label_column_missing_or_mistyped_stops_the_day(tmp_path, capsys, edit, expected):
    data = helpers.edited_dataset(tmp_path, edit)
    code, err = helpers.run_cli(capsys, data, tmp_path / "root", helpers.config_file(tmp_path))
    assert code == 1
    assert "pipeline run failed in ImportExampleGen: DroppedRowsError" in err
    assert expected in err, err[-3000:]
    assert not os.path.exists(tmp_path / "root" / "serving")


def _drift_age(directory):
    """Every record under `directory` (gzip TFRecords, rewritten in place) gets one FEA_AGE."""
    examples = helpers.read_examples(directory)
    for name in os.listdir(directory):
        os.remove(os.path.join(directory, name))
    for example in examples:
        helpers.set_feature(example, "FEA_AGE", "bytes_list", [b"age-never-seen"])
    helpers.write_examples(os.path.join(directory, "part-00000.tfrecord.gz"), examples)


def test_drift_between_spans_blocks_or_warns_per_config_and_skew_warns(tmp_path):
    from conftest import tiny_pipeline_config
    from pipeline import local_runner, synthetic_data
    data = tmp_path / "data"
    synthetic_data.write_spans(str(data), 2, rows=300, seed=5)
    _drift_age(str(data / "span-2"))
    skew = {"skew": {"FEA_AGE": 0.5}, "serving_logs": str(data / "span-2")}
    outputs = local_runner.run(str(data), str(tmp_path / "root"), tiny_pipeline_config(
        checks={"drift": {"FEA_AGE": 0.5}, **skew}), until="StrictExampleValidator", span=1)
    report = json.loads(open(os.path.join(
        outputs["StrictExampleValidator"]["anomalies"][0].uri, "data_checks.json")).read())
    assert report["drift"] is None                        # no earlier span
    assert report["skew"]["features"]["FEA_AGE"]["value"] == pytest.approx(1.0, abs=0.01)
    assert [w for w in report["warnings"] if w.startswith(
        "feature 'FEA_AGE': skew between training and serving") and w.endswith("[skew]")]

    with pytest.raises(Exception, match=r"feature 'FEA_AGE': drift from span 1 to span 2: "
                                        r"L-infinity distance 1\.0000 > checks\.drift\.FEA_AGE"):
        local_runner.run(str(data), str(tmp_path / "root"), tiny_pipeline_config(
            checks={"drift": {"FEA_AGE": 0.5}}), until="StrictExampleValidator", span=2)
    warned = tiny_pipeline_config(checks={"drift": {"FEA_AGE": 0.5, "FEA_UID": 0.99},
                                          "anomalies": {"drift": "warn"}})
    outputs = local_runner.run(str(data), str(tmp_path / "root"), warned,
                               until="StrictExampleValidator", span=2)
    report = json.loads(open(os.path.join(
        outputs["StrictExampleValidator"]["anomalies"][0].uri, "data_checks.json")).read())
    assert report["drift"]["previous_span"] == 1
    assert report["drift"]["features"]["FEA_UID"]["value"] <= 0.99
    assert [w for w in report["warnings"] if w.startswith(
        "feature 'FEA_AGE': drift from span 1 to span 2: L-infinity distance 1.0000")]


def test_drift_or_skew_of_a_feature_the_schema_lacks_is_refused_before_the_build():
    from conftest import tiny_pipeline_config
    from modules.config import ConfigError
    from pipeline.pipeline import SCHEMA_PATH, check_schema
    with pytest.raises(ConfigError, match=r"checks.drift.FEA_AGEE: no such feature in the "
                                          r"schema .*schema.pbtxt"):
        check_schema(tiny_pipeline_config(checks={"drift": {"FEA_AGEE": 0.3}}), SCHEMA_PATH)
    with pytest.raises(ConfigError, match="checks.serving_logs.*go together"):
        tiny_pipeline_config(checks={"skew": {"FEA_AGE": 0.3}})
