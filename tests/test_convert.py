"""Bring your own data: `lt4rec convert` (CSV / Parquet to typed tf.Examples) and `lt4rec schema`
(a starting schema from the converted data), on the worked example's spec; bad input is refused
naming the file, row and column, with nothing written."""
import csv
import glob
import os

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from modules.config import Config
from pipeline import cli, convert, infer_schema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC_FILE = os.path.join(ROOT, "examples", "feed", "spec.yaml")
HEADER = ["request_id", "user_id", "item_id", "author_id", "item_tags", "user_age", "duration_s",
          "hour", "click", "like", "watch_ratio", "unused"]
GOOD = [["r0", "u1", "i1", "a1", "music|news", "31", "40.5", "13", "1", "0", "0.95", "x"],
        ["r0", "u2", "i2", "a1", "", "", "12", "7", "0", "0", "0", "y"],
        ["r1", "u1", "i3", "a2", "sport||food ", "45", "300", "22", "1", "1", "0.2", "z"]]


def _csv(path, rows, header=HEADER):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _spec():
    return Config.load(spec_path=SPEC_FILE).spec


def _read(out_dir):
    files = sorted(glob.glob(os.path.join(out_dir, "*.gz")))
    return [tf.train.Example.FromString(r.numpy()).features.feature
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def test_csv_rows_become_examples_typed_by_the_spec(tmp_path):
    result = convert.convert(_csv(tmp_path / "log.csv", GOOD), _spec(), str(tmp_path / "out"),
                             rows_per_file=2)
    assert result["rows"] == 3 and len(result["files"]) == 2
    first, second, third = _read(str(tmp_path / "out"))
    assert first["user_id"].bytes_list.value == [b"u1"]
    assert first["item_tags"].bytes_list.value == [b"music", b"news"]
    assert third["item_tags"].bytes_list.value == [b"sport", b"food"]   # empty items dropped
    assert first["duration_s"].float_list.value == pytest.approx([40.5])
    assert first["watch_ratio"].float_list.value == pytest.approx([0.95])
    assert first["click"].float_list.value == [1.0] and first["request_id"].bytes_list.value
    assert "user_age" not in second and list(second["item_tags"].bytes_list.value) == []
    assert "unused" not in first                                          # not in the spec


def test_parquet_converts_like_csv(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    columns = {name: [row[i] for row in GOOD] for i, name in enumerate(HEADER)}
    columns["user_age"] = [31, None, 45]
    columns["item_tags"] = [["music", "news"], [], ["sport", "food"]]
    pq.write_table(pa.table(columns), str(tmp_path / "log.parquet"))
    convert.convert(str(tmp_path / "log.parquet"), _spec(), str(tmp_path / "out"))
    parquet = _read(str(tmp_path / "out"))
    convert.convert(_csv(tmp_path / "log.csv", GOOD), _spec(), str(tmp_path / "csv"))
    assert parquet == _read(str(tmp_path / "csv"))


@pytest.mark.parametrize("change, message", [
    ({"duration_s": "long"}, r"log.csv: row 2, column 'duration_s': 'long' is not a number"),
    ({"like": "2"}, r"log.csv: row 2, column 'like': '2' is outside the label's domain \{0, 1\}"),
    ({"watch_ratio": ""}, r"log.csv: row 2, column 'watch_ratio': empty, but a task reads it"),
    ({"hour": "nan"}, r"row 2, column 'hour': 'nan' is not a finite number"),
])
def test_a_bad_value_is_refused_naming_file_row_and_column_and_nothing_is_written(
        tmp_path, change, message):
    rows = [list(row) for row in GOOD]
    for column, value in change.items():
        rows[1][HEADER.index(column)] = value
    out = tmp_path / "out"
    with pytest.raises(convert.ConvertError, match=message):
        convert.convert(_csv(tmp_path / "log.csv", rows), _spec(), str(out), rows_per_file=1)
    assert not out.exists() and not glob.glob(str(tmp_path / "*.converting"))


def test_a_missing_column_or_a_used_output_is_refused_before_any_row(tmp_path):
    header = [c for c in HEADER if c != "author_id"]
    path = _csv(tmp_path / "log.csv", [r[:3] + r[4:] for r in GOOD], header)
    with pytest.raises(convert.ConvertError, match=r"log.csv lacks the spec's column\(s\) "
                                                   r"\['author_id'\]"):
        convert.convert(path, _spec(), str(tmp_path / "out"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.gz").write_text("x")
    with pytest.raises(convert.ConvertError, match="is not empty"):
        convert.convert(_csv(tmp_path / "ok.csv", GOOD), _spec(), str(tmp_path / "full"))


def test_the_inferred_schema_marks_labels_and_leaves_ids_open(tmp_path):
    convert.convert(_csv(tmp_path / "log.csv", GOOD * 5), _spec(), str(tmp_path / "out"))
    assert cli.main(["schema", "--data", str(tmp_path / "out"), "--spec", SPEC_FILE,
                     "--out", str(tmp_path / "schema.pbtxt")]) == 0
    from tfx.utils import io_utils
    schema = io_utils.parse_pbtxt_file(str(tmp_path / "schema.pbtxt"), schema_pb2.Schema())
    features = {f.name: f for f in schema.feature}
    assert list(schema.default_environment) == ["TRAINING", "SERVING"]
    for label in ("click", "like", "watch_ratio"):
        assert list(features[label].not_in_environment) == ["SERVING"], label
    assert (features["like"].float_domain.min, features["like"].float_domain.max) == (0.0, 1.0)
    assert not features["watch_ratio"].float_domain.HasField("max")     # a rule reads it
    assert not features["item_id"].HasField("string_domain") and not schema.string_domain
    assert not features["user_id"].not_in_environment
    assert not any(f.HasField("shape") for f in schema.feature)
    assert _spec().schema_problems({f.name: schema_pb2.FeatureType.Name(f.type)
                                    for f in schema.feature}) == []
    assert cli.main(["schema", "--data", str(tmp_path / "out"), "--spec", SPEC_FILE,
                     "--out", str(tmp_path / "schema.pbtxt")]) == 2      # never overwritten


def test_data_that_cannot_back_the_spec_gets_no_schema(tmp_path):
    convert.convert(_csv(tmp_path / "log.csv", GOOD), _spec(), str(tmp_path / "out"))
    values = Config.load(spec_path=SPEC_FILE)
    spec = values.spec
    spec.features[0].name = "session_id"                                 # not in the data
    with pytest.raises(infer_schema.SchemaError, match=r"spec.features\[0\] \('session_id', "
                                                       r"id\): missing from the schema"):
        infer_schema.infer(str(tmp_path / "out" / "*"), spec)


def test_a_bad_spec_file_is_refused_by_every_command_before_anything_is_written(tmp_path,
                                                                                 capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("spec:\n  features: [{name: user_id, kind: category}]\n"
                    "  tasks: [{name: click, label: click, loss: bce}]\n")
    csv_path = _csv(tmp_path / "log.csv", GOOD)
    for args in (["convert", "--input", csv_path, "--out", str(tmp_path / "out")],
                 ["schema", "--data", str(tmp_path), "--out", str(tmp_path / "schema.pbtxt")],
                 ["run", "--root", str(tmp_path / "root")],
                 ["synth", "--out", str(tmp_path / "synth")]):
        assert cli.main(args + ["--spec", str(spec)]) == 2, args[0]
        assert ("spec.features[0] ('user_id').kind = 'category' is not a kind"
                in capsys.readouterr().err), args[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv", "spec.yaml"]


def test_unlabeled_impressions_convert_without_task_columns(tmp_path):
    header = HEADER[:8]
    convert.convert(_csv(tmp_path / "new.csv", [r[:8] for r in GOOD], header), _spec(),
                    str(tmp_path / "out"), labeled=False)
    rows = _read(str(tmp_path / "out"))
    assert len(rows) == 3 and "click" not in rows[0] and rows[0]["item_id"].bytes_list.value
