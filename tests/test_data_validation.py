"""Anomalous input stops the run at StrictExampleValidator with a message naming the feature."""
import os

import pytest
import tensorflow as tf

from conftest import tiny_pipeline_config
from pipeline import cli, synthetic_data

pytestmark = pytest.mark.e2e


def _rewrite(src_dir, dst_dir, edit):
    os.makedirs(dst_dir)
    files = sorted(tf.io.gfile.glob(os.path.join(src_dir, "*")))
    with tf.io.TFRecordWriter(os.path.join(dst_dir, "bad.tfrecord.gz"), "GZIP") as writer:
        for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
            example = tf.train.Example.FromString(record.numpy())
            edit(example)
            writer.write(example.SerializeToString())


def _drop_label(example):
    del example.features.feature["label"]


def _label_as_bytes(example):
    value = example.features.feature["label"].int64_list.value[0]
    example.features.feature["label"].bytes_list.value.append(str(value).encode())


@pytest.mark.parametrize("edit, expected", [
    (_drop_label, "feature 'label'"),
    (_label_as_bytes, "feature 'label'"),
])
def test_anomalous_data_stops_the_run_naming_the_feature(tmp_path, capsys, edit, expected):
    synthetic_data.write_dataset(str(tmp_path / "good"), rows=300, seed=5)
    _rewrite(str(tmp_path / "good"), str(tmp_path / "bad"), edit)
    config_path = tmp_path / "config.json"
    config_path.write_text(tiny_pipeline_config().to_json())
    code = cli.main(["run", "--data", str(tmp_path / "bad"), "--root", str(tmp_path / "root"),
                     "--config", str(config_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "DataAnomaliesError" in err and expected in err
    assert not os.path.exists(tmp_path / "root" / "pipeline" / "Transform")
    assert not os.path.exists(tmp_path / "root" / "serving")
