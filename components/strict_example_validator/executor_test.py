"""StrictExampleValidator's single-value check: the labels are the schema's features absent at
serving, whatever the spec names them."""
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from components.strict_example_validator import executor

SCHEMA = """
feature { name: "user_id" type: BYTES }
feature { name: "click" type: FLOAT not_in_environment: "SERVING" }
feature { name: "watch_ratio" type: FLOAT not_in_environment: "SERVING" }
default_environment: "TRAINING"
default_environment: "SERVING"
"""


def _statistics(values):
    """{feature: (min, max)} as a DatasetFeatureStatisticsList."""
    result = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = result.datasets.add()
    for name, (low, high) in values.items():
        feature = dataset.features.add()
        feature.path.step.append(name)
        feature.num_stats.common_stats.num_non_missing = 10
        feature.num_stats.min, feature.num_stats.max = low, high
    return result


def test_a_label_with_one_value_in_a_split_is_an_anomaly_named_by_the_schema():
    labels = executor.label_columns(text_format.Parse(SCHEMA, schema_pb2.Schema()))
    assert labels == ["click", "watch_ratio"]
    statistics = _statistics({"user_id": (0, 0), "click": (0, 0), "watch_ratio": (0, 0.9)})
    assert executor.single_class_labels("eval", statistics, labels) == [
        "split 'eval': feature 'click': single class (every example has click 0; AUC is "
        "undefined)"]
    assert executor.single_class_labels("eval", _statistics({"click": (0, 1)}), labels) == []
