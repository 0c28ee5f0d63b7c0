"""Daily data in the spans layout through the pipeline: the newest span by default, the window of
spans before it, a given span, a span that is not there refused before anything runs, and the
next day warm-started from the day before's pushed model."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

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


@pytest.fixture(scope="module")
def two_days(data, tmp_path_factory):
    """Span 1 run cold (nothing pushed yet), then span 2 warm-started from span 1's push."""
    root = tmp_path_factory.mktemp("two_days")
    config = tiny_pipeline_config(mtl={"warm_start": "latest"})
    layout = local_runner.RunLayout(str(root))
    first = summary.build(local_runner.run(str(data), str(root), config, span=1), layout, config)
    outputs = local_runner.run(str(data), str(root), config, span=2)
    return {"config": config, "first": first, "outputs": outputs,
            "second": summary.build(outputs, layout, config)}


def test_span_2_warm_starts_from_span_1s_pushed_model(two_days):
    first, second = two_days["first"], two_days["second"]
    assert first["span"] == 1 and first["warm_started_from"] is None and first["pushed_model"]
    assert second["span"] == 2 and second["warm_started_from"] == first["pushed_model"]
    assert second["pushed_model"] != first["pushed_model"]


def _warmed(two_days, config):
    """(a fresh network for span 2's vocabularies, the same warm-started from version 1, the
    warm start's record)."""
    from modules import inputs, warm_start
    tft_output = tft.TFTransformOutput(two_days["outputs"]["Transform"]["transform_graph"][0].uri)
    tasks = config.spec.task_names()

    def build(sizes):
        return inputs.network_for(sizes, config, tasks)
    sizes = inputs.vocab_sizes(tft_output, config)
    warmed = build(sizes)
    record = warm_start.apply(warmed, two_days["first"]["pushed_model"], tft_output, config,
                              build)
    return build(sizes), warmed, record, tft_output


def test_known_ids_keep_version_1s_rows_and_new_ids_start_fresh(two_days):
    from modules import export
    fresh, warmed, record, tft_output = _warmed(two_days, two_days["config"])
    v1 = two_days["first"]["pushed_model"]
    with open(os.path.join(v1, "assets", "vocab_FEA_VID"), "rb") as f:
        old_vocab = [line.rstrip(b"\n") for line in f]
    new_vocab = tft_output.vocabulary_by_name("vocab_FEA_VID")
    reader = tf.train.load_checkpoint(os.path.join(v1, export.NETWORK_CHECKPOINT))
    keys = reader.get_variable_to_shape_map()
    [table] = [k for k in keys if "tables/FEA_VID/embeddings" in k]
    old_rows = reader.get_tensor(table)
    both = [t for t in new_vocab if t in set(old_vocab)]
    new = [t for t in new_vocab if t not in set(old_vocab)]
    assert both and new                          # the synthetic days share ids and add ids
    assert record["rows_kept"]["FEA_VID"] == len(both)
    rows, fresh_rows = (n.tables["FEA_VID"].embeddings.numpy() for n in (warmed, fresh))
    for token in both:
        assert np.array_equal(rows[new_vocab.index(token)], old_rows[old_vocab.index(token)])
    for token in new:
        assert np.array_equal(rows[new_vocab.index(token)], fresh_rows[new_vocab.index(token)])
    [kernel] = [k for k in keys if k.startswith("network/mlp_0.Skernel/")]  # "mlp_0/kernel"
    assert np.array_equal(warmed.kernels[0].numpy(), reader.get_tensor(kernel))   # MLP copied


def test_a_model_of_another_shape_is_refused_naming_it(two_days):
    from modules.config import ConfigError
    other = tiny_pipeline_config(model={"hidden_units": [16, 8]})
    with pytest.raises(ConfigError, match="does not fit this config"):
        _warmed(two_days, other)


def test_a_version_without_a_network_checkpoint_starts_cold(two_days, tmp_path):
    import shutil

    from modules import warm_start
    v1 = two_days["first"]["pushed_model"]
    assert warm_start.newest(os.path.dirname(v1)) == two_days["second"]["pushed_model"]
    assert warm_start.newest(v1) == v1
    old = tmp_path / "serving" / "7"
    shutil.copytree(v1, old, ignore=shutil.ignore_patterns("network"))
    assert warm_start.newest(str(old.parent)) is None and warm_start.newest(str(old)) is None
    assert warm_start.newest(str(tmp_path / "nothing")) is None
