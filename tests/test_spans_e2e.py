"""Daily data in the spans layout through the pipeline: the newest span by default, the window of
spans before it, a given span, and a span that is not there refused before anything runs."""
import json
import os

import pytest
import tensorflow as tf

from conftest import tiny_pipeline_config
from pipeline import cli, local_runner, summary, synthetic_data

pytestmark = pytest.mark.e2e

ROWS = 500          # per span


def _records(examples, split):
    files = tf.io.gfile.glob(os.path.join(examples.uri, f"Split-{split}", "*"))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def _all_records(examples):
    return sum(_records(examples, split) for split in ("train", "validation", "eval"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("spans") / "data"
    synthetic_data.write_spans(str(out), 3, ROWS, seed=5)
    return out


def test_a_run_takes_the_newest_span_and_the_window_before_it(data, tmp_path):
    config = tiny_pipeline_config(data={"window_spans": 2})
    outputs = local_runner.run(str(data), str(tmp_path), config)
    examples = outputs["ImportExampleGen"]["examples"][0]
    assert examples.custom_properties["span"].int_value == 3
    assert _all_records(examples) == 2 * ROWS                  # spans 2 and 3
    layout = local_runner.RunLayout(str(tmp_path))
    result = summary.build(outputs, layout, config)
    with open(layout.summary_path, encoding="utf-8") as f:
        assert json.load(f)["span"] == result["span"] == 3
    assert result["blessed"] is True and result["pushed_model"]
    assert summary.render(result).startswith("lt4rec run finished (span 3, ")


def test_a_given_span_is_read_alone(data, tmp_path):
    outputs = local_runner.run(str(data), str(tmp_path), tiny_pipeline_config(), span=1,
                               until="ImportExampleGen")
    examples = outputs["ImportExampleGen"]["examples"][0]
    assert examples.custom_properties["span"].int_value == 1
    assert _all_records(examples) == ROWS


def test_a_missing_span_is_refused_naming_the_spans(data, tmp_path, capsys):
    assert cli.main(["run", "--data", str(data), "--root", str(tmp_path), "--span", "9"]) == 2
    err = capsys.readouterr().err
    assert "has no span-9 directory (spans: [1, 2, 3])" in err
    assert not os.path.exists(tmp_path / "metadata.sqlite")       # nothing ran
