"""`lt4rec convert`: CSV or Parquet rows to gzip TFRecords of `tf.Example`, typed by the spec.

Each column the spec reads becomes a feature of the type its role needs:
- `id` features and key columns: the value as a string (`bytes_list`); an empty cell is absent;
- `id_list` features: the cell split on the list separator (`bytes_list`, empty items dropped);
- `numeric` features and reference score columns: a float (`float_list`); an empty cell is
  absent;
- task columns (labels, rows, regression targets): a float, which must be there; a column a task
  uses as its label or rows as it is must hold 0 or 1.
Other columns are dropped. Rows stream through (a file larger than memory converts), a progress
line is logged every `PROGRESS_ROWS` rows, and shards of `rows_per_file` rows are written to a
temporary directory that is renamed into place only when every row converted: a bad value stops
the conversion naming the file, row and column, with nothing written.
"""
import csv
import glob
import logging
import os
import shutil

import tensorflow as tf

from modules.errors import ConfigError

PROGRESS_ROWS = 100000
ZERO_ONE = (0.0, 1.0)


class ConvertError(ConfigError):
    """Input that cannot be converted: names the file, and the row and column when it is a value."""


def roles(spec):
    """{column: role} of every column the spec reads: a feature kind, "key", "score" or
    "task" (a column a task reads; "binary" when it reads it as its 0/1 label or rows)."""
    found = {f.name: f.kind for f in spec.features}
    found.update({column: "key" for column in spec.keys})
    found.update({r.column: "score" for r in spec.reference_scores})
    for task in spec.tasks:
        found.update({column: "task" for column in task.columns()})
        found.update({column: "binary" for column in task.zero_one_columns()})
    return found


def convert(pattern, spec, out_dir, list_separator="|", rows_per_file=1000000, labeled=True):
    """Convert every file matching `pattern` (.csv, or .parquet) into `out_dir`; returns
    {"rows", "files"} (the TFRecord shards written). `labeled=False`: impressions to score, without
    the task columns (nor reference scores)."""
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise ConvertError(f"invalid input: --input {pattern!r} matches no file")
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise ConvertError(f"invalid output: --out {out_dir!r} is not empty")
    wanted = {column: role for column, role in roles(spec).items()
              if labeled or role not in ("task", "binary", "score")}
    for path in paths:
        _check_columns(path, _header(path), wanted)
    tmp = out_dir.rstrip("/") + ".converting"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        rows, shards = _write(paths, wanted, tmp, list_separator, rows_per_file)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.makedirs(out_dir, exist_ok=True)
    files = []
    for name in sorted(os.listdir(tmp)):
        os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
        files.append(os.path.join(out_dir, name))
    os.rmdir(tmp)
    return {"rows": rows, "files": files}


def _write(paths, wanted, out_dir, separator, rows_per_file):
    rows, shard, writer = 0, 0, None
    try:
        for path in paths:
            for number, row in enumerate(_rows(path, list(wanted)), start=1):
                if writer is None or rows % rows_per_file == 0:
                    if writer:
                        writer.close()
                    writer = tf.io.TFRecordWriter(
                        os.path.join(out_dir, f"part-{shard:05d}.tfrecord.gz"), options="GZIP")
                    shard += 1
                writer.write(example(row, wanted, separator, f"{path}: row {number}")
                             .SerializeToString(deterministic=True))
                rows += 1
                if rows % PROGRESS_ROWS == 0:
                    logging.info("converted %d rows (now in %s)", rows, path)
    finally:
        if writer:
            writer.close()
    logging.info("converted %d rows from %d file(s) into %d shard(s)", rows, len(paths), shard)
    return rows, shard


def example(row, wanted, separator, where):
    """The tf.Example of one row ({column: cell}); ConvertError naming `where` and the column."""
    result = tf.train.Example()
    features = result.features.feature
    for column, role in wanted.items():
        value = row.get(column)
        text = "" if value is None else str(value).strip()
        if role in ("id", "key"):
            if text:
                features[column].bytes_list.value.append(text.encode("utf-8"))
        elif role == "id_list":
            items = value if isinstance(value, (list, tuple)) else text.split(separator)
            features[column].bytes_list.value.extend(
                str(v).strip().encode("utf-8") for v in items if v is not None and str(v).strip())
        elif text or role in ("task", "binary"):
            features[column].float_list.value.append(_number(text, column, role, where))
    return result


def _number(text, column, role, where):
    if not text and role in ("task", "binary"):
        raise ConvertError(f"invalid input: {where}, column '{column}': empty, but a task reads "
                           f"it (labels must be there)")
    try:
        number = float(text)
    except ValueError:
        raise ConvertError(f"invalid input: {where}, column '{column}': {text!r} is not a "
                           f"number ({role} column)") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ConvertError(f"invalid input: {where}, column '{column}': {text!r} is not a "
                           f"finite number")
    if role == "binary" and number not in ZERO_ONE:
        raise ConvertError(f"invalid input: {where}, column '{column}': {text!r} is outside the "
                           f"label's domain {{0, 1}} (a task reads it as a 0/1 label or rows)")
    return number


def _check_columns(path, header, wanted):
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ConvertError(f"invalid input: {path} lacks the spec's column(s) {missing}; its "
                           f"columns: {header}")


def _header(path):
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq
        return list(pq.ParquetFile(path).schema_arrow.names)
    with open(path, newline="", encoding="utf-8") as f:
        return next(csv.reader(f), [])


def _rows(path, columns):
    """{column: cell} per row of a CSV or Parquet file, streamed."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq
        for batch in pq.ParquetFile(path).iter_batches(batch_size=10000, columns=columns):
            yield from batch.to_pylist()
        return
    with open(path, newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f)
