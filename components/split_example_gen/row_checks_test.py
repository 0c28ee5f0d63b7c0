"""Row checks: each schema constraint a record can break, named as the summary counts it."""
import math

import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.split_example_gen import row_checks

SCHEMA = """
feature { name: "id" type: BYTES presence { min_fraction: 1.0 } value_count { min: 1 max: 1 } }
feature { name: "tags" type: BYTES value_count { min: 1 max: 3 } }
feature { name: "click" type: INT presence { min_fraction: 1.0 } int_domain { min: 0 max: 1 } }
feature { name: "rate" type: FLOAT presence { min_fraction: 1.0 }
          float_domain { min: 0.0 max: 1.0 disallow_nan: true disallow_inf: true } }
feature { name: "score" type: FLOAT }
"""
CHECKS = row_checks.checks_of(text_format.Parse(SCHEMA, schema_pb2.Schema()))


def _example(**values):
    base = {"id": [b"a"], "click": [1], "rate": [0.5]}
    base.update(values)
    example = tf.train.Example()
    for name, value in base.items():
        if value is None:
            continue
        feature = example.features.feature[name]
        if value and isinstance(value[0], bytes):
            feature.bytes_list.value.extend(value)
        elif value and isinstance(value[0], int):
            feature.int64_list.value.extend(value)
        else:
            feature.float_list.value.extend(value)
    return example


@pytest.mark.parametrize("values, reason", [
    ({}, None),
    ({"tags": None, "score": [math.nan]}, None),          # optional, unconstrained
    ({"id": None}, "id: missing"),
    ({"id": []}, "id: missing"),
    ({"id": [7]}, "id: wrong type (int64_list, the schema has bytes_list)"),
    ({"id": [b"a", b"b"]}, "id: more than 1 values"),
    ({"tags": [b"1", b"2", b"3", b"4"]}, "tags: more than 3 values"),
    ({"click": [2]}, "click: outside its domain [0, 1]"),
    ({"click": [-1]}, "click: outside its domain [0, 1]"),
    ({"rate": [1.7]}, "rate: outside its domain [0, 1]"),
    ({"rate": [math.nan]}, "rate: NaN"),
    ({"rate": [math.inf]}, "rate: infinite"),
    ({"rate": [1.7], "click": [5]}, "click: outside its domain [0, 1]"),   # the first, in order
])
def test_a_record_is_named_by_the_first_check_it_fails(values, reason):
    assert row_checks.problem(_example(**values), CHECKS) == reason


def test_tally_and_verdict_count_every_record_read():
    read, dropped = row_checks.tally([(None, 96), ("rate: NaN", 3), ("id: missing", 1)])
    assert (read, dropped) == (100, {"rate: NaN": 3, "id: missing": 1})
    row_checks.verdict(read, dropped, "data/*", 0.04)             # 4% dropped: tolerated
    with pytest.raises(row_checks.DroppedRowsError,
                       match=r"4 of the 100 records read from data/\* \(4.0%\).*"
                             r"rate: NaN: 3 rows \(3.0%\); id: missing: 1 rows"):
        row_checks.verdict(read, dropped, "data/*", 0.03)


def test_merge_sums_reads():
    assert row_checks.merge([{"rows_read": 10, "dropped_rows": {"a": 1}},
                             {"rows_read": 5, "dropped_rows": {"a": 2, "b": 1}}]) == \
        (15, {"a": 3, "b": 1})
