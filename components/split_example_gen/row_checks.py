"""Row-level checks: the schema's per-value constraints applied to each record before any split.

A record that breaks one (a required column missing, a value of another type than the schema's,
too few or too many values, a number outside its domain, NaN or infinity where the schema
disallows them) is dropped and counted under its first failing check, e.g.
"cvrlabel: outside its domain [0, 1]". Transform could not parse most of these records, and a
label out of its domain would train on a wrong target. Above `max_dropped_fraction` of a
split's records the day stops (`DroppedRowsError`), naming each reason and its count.
"""
import collections
import json
import math
import os

import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils

_KINDS = {schema_pb2.BYTES: "bytes_list", schema_pb2.INT: "int64_list",
          schema_pb2.FLOAT: "float_list"}
# One feature's checks: the tf.Example list kind, required (presence 1), value count bounds
# (None: unbounded), numeric domain bounds and whether NaN / infinities are refused.
Check = collections.namedtuple(
    "Check", "name kind required min_count max_count low high no_nan no_inf")


class DroppedRowsError(RuntimeError):
    """More records than tolerated fail the row checks; the message names each reason."""


def checks_of(schema):
    """The row checks of a Schema proto, one per feature, in schema order."""
    checks = []
    for feature in schema.feature:
        if feature.type not in _KINDS:
            continue
        count = feature.value_count if feature.HasField("value_count") else None
        low = high = None
        no_nan = no_inf = False
        if feature.HasField("int_domain"):
            domain = feature.int_domain
            low = domain.min if domain.HasField("min") else None
            high = domain.max if domain.HasField("max") else None
        elif feature.HasField("float_domain"):
            domain = feature.float_domain
            low = domain.min if domain.HasField("min") else None
            high = domain.max if domain.HasField("max") else None
            no_nan, no_inf = domain.disallow_nan, domain.disallow_inf
        checks.append(Check(
            feature.name, _KINDS[feature.type],
            feature.HasField("presence") and feature.presence.min_fraction >= 1.0,
            count.min if count is not None and count.HasField("min") else None,
            count.max if count is not None and count.HasField("max") else None,
            low, high, no_nan, no_inf))
    return checks


def read_checks(schema_path):
    """The row checks of the schema file at `schema_path` (any filesystem TF reads)."""
    return checks_of(io_utils.parse_pbtxt_file(schema_path, schema_pb2.Schema()))


def _domain(check):
    low = "-inf" if check.low is None else f"{check.low:g}"
    high = "inf" if check.high is None else f"{check.high:g}"
    return f"[{low}, {high}]"


def problem(example, checks):
    """The first check a tf.Example fails, as "<feature>: <what>"; None when it passes all."""
    features = example.features.feature
    for check in checks:
        kind = features[check.name].WhichOneof("kind") if check.name in features else None
        values = getattr(features[check.name], kind).value if kind else ()
        if not len(values):
            if check.required:
                return f"{check.name}: missing"
            continue
        if kind != check.kind:
            return f"{check.name}: wrong type ({kind}, the schema has {check.kind})"
        if check.min_count is not None and len(values) < check.min_count:
            return f"{check.name}: fewer than {check.min_count} values"
        if check.max_count is not None and len(values) > check.max_count:
            return f"{check.name}: more than {check.max_count} values"
        if kind == "bytes_list" or (check.low is None and check.high is None
                                    and not check.no_nan and not check.no_inf):
            continue
        for value in values:
            if math.isnan(value):
                if check.no_nan:
                    return f"{check.name}: NaN"
            elif math.isinf(value) and check.no_inf:
                return f"{check.name}: infinite"
            elif (check.low is not None and value < check.low) or (
                    check.high is not None and value > check.high):
                return f"{check.name}: outside its domain {_domain(check)}"
    return None


def tally(counts):
    """(rows read, {reason: rows dropped}) from [(first failing check or None, rows)]."""
    counts = dict(counts)
    return counts.pop(None, 0) + sum(counts.values()), counts


def verdict(read, dropped, source, tolerance):
    """DroppedRowsError naming `source` and every reason when the share of the `read` records
    that `dropped` ({reason: rows}) holds exceeds `tolerance`."""
    total = sum(dropped.values())
    if read and total / read > tolerance:
        reasons = "; ".join(f"{reason}: {n} rows ({n / read:.1%})"
                            for reason, n in sorted(dropped.items(), key=lambda kv: -kv[1]))
        raise DroppedRowsError(
            f"{total} of the {read} records read from {source} ({total / read:.1%}) fail "
            f"the schema's row checks, more than checks.max_dropped_fraction={tolerance:g}: "
            f"{reasons}. The day stops: fix the data (or the schema, if it is the data that "
            f"is right)")


def write_counts(path, source, counts):
    """Write one read's `tally` of [(reason or None, rows)] as JSON, naming its `source`."""
    read, dropped = tally(counts)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump({"source": source, "rows_read": read, "dropped_rows": dropped}, f,
                  sort_keys=True)


def read_counts(directory):
    """The `write_counts` reports in `directory`, by file name."""
    reports = {}
    for path in sorted(tf.io.gfile.glob(f"{directory}/*.json")):
        with tf.io.gfile.GFile(path) as f:
            reports[path] = json.load(f)
    return reports


def merge(reports):
    """The rows read and {reason: rows dropped} summed over several `write_counts` reports."""
    read, dropped = 0, collections.Counter()
    for report in reports:
        read += report["rows_read"]
        dropped.update(report["dropped_rows"])
    return read, dict(dropped)
