"""Drift and skew distances with TFDV's comparators, and the kept statistics of each span."""
import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.strict_example_validator import distribution_checks as checks

SCHEMA = text_format.Parse("""
feature { name: "age" type: BYTES }
feature { name: "rate" type: FLOAT }
""", schema_pb2.Schema())


def _statistics(ages, rates):
    return tfdv.generate_statistics_from_dataframe(pd.DataFrame({"age": ages, "rate": rates}))


def test_drift_is_measured_per_feature_by_its_kind_and_lines_name_what_is_over():
    rng = np.random.default_rng(0)
    before = _statistics(rng.choice(["a", "b", "c", "d"], 2000), rng.uniform(0, 1, 2000))
    after = _statistics(np.where(rng.uniform(size=2000) < 0.5, "a",
                                 rng.choice(["a", "b", "c", "d"], 2000)), rng.uniform(0, 1, 2000))
    found = checks.distances(after, before, SCHEMA, {"age": 0.2, "rate": 0.2}, "drift")
    assert found["age"]["measure"] == "L-infinity distance"
    assert found["age"]["value"] == pytest.approx(0.375, abs=0.05)   # 'a': 25% -> 62.5%
    assert found["rate"]["measure"] == "Jensen-Shannon divergence"
    assert found["rate"]["value"] < 0.05
    assert checks.over_threshold(found, "drift", "from span 1 to span 2") == [
        f"feature 'age': drift from span 1 to span 2: L-infinity distance "
        f"{found['age']['value']:.4f} > checks.drift.age = 0.2 [drift]"]


def test_a_feature_the_schema_lacks_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match=r"checks.skew.agee: the schema has no feature 'agee'"):
        checks.with_comparators(SCHEMA, {"agee": 0.1}, "skew")


def test_the_newest_earlier_kept_span_is_the_previous_one(tmp_path):
    history = str(tmp_path / "history")
    assert checks.previous_span(history, 3) is None
    statistics = _statistics(["a", "b"], [0.1, 0.2])
    for span in (1, 2, 5):
        checks.keep(history, span, statistics)
    assert checks.previous_span(history, 5) == (2, f"{history}/span-2/{checks.STATS_FILE}")
    assert checks.previous_span(history, 1) is None
    assert checks.read_statistics(checks.previous_span(history, 9)[1]) == statistics
