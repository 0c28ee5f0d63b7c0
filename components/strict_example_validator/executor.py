"""Executor: TFX's ExampleValidator, then stop the run if any split has anomalies.

Besides the schema anomalies, a split where a label holds a single value is an anomaly: the
trainers' and the Evaluator's AUC is undefined on it (the schema cannot express this). The labels
are the schema's features absent in the SERVING environment (LT4REC: `label` and `cvrlabel`; an
inferred schema marks every column a task reads so).
"""
import os

from tfx.components.example_validator import executor as tfx_executor
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.types import artifact_utils
from tfx.utils import io_utils

from tensorflow_metadata.proto.v0 import anomalies_pb2

SERVING = "SERVING"


class DataAnomaliesError(RuntimeError):
    """The data does not conform to the schema; the message names every feature and anomaly."""


class Executor(tfx_executor.Executor):
    """Validates like ExampleValidator, writes the anomalies artifact, then fails on anomalies."""

    def Do(self, input_dict, output_dict, exec_properties):
        result = super().Do(input_dict, output_dict, exec_properties)
        anomalies = output_dict["anomalies"][0]
        statistics = input_dict["statistics"][0]
        labels = label_columns(io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(
            artifact_utils.get_single_uri(input_dict["schema"]))))
        problems = []
        for split in artifact_utils.decode_split_names(anomalies.split_names):
            split_uri = artifact_utils.get_split_uri([anomalies], split)
            problems += describe_anomalies(split, read_anomalies(split_uri))
            problems += single_class_labels(
                split, stats_artifact_utils.load_statistics(statistics, split).proto(), labels)
        if problems:
            raise DataAnomaliesError(
                "input data does not match the schema (statistics at %s):\n  %s"
                % (statistics.uri, "\n  ".join(problems)))
        return result


def read_anomalies(split_uri):
    """Read the Anomalies proto ExampleValidator wrote for one split."""
    path = os.path.join(split_uri, tfx_executor.DEFAULT_FILE_NAME)
    return anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))


def describe_anomalies(split, anomalies):
    """One line per anomalous feature: split, feature, short and long description."""
    lines = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        reasons = "; ".join(r.description or r.short_description for r in info.reason)
        lines.append(f"split '{split}': feature '{feature}': "
                     f"{info.short_description or 'anomaly'} ({reasons or info.description})")
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        lines.append(f"split '{split}': dataset: {info.short_description} ({info.description})")
    return lines


def label_columns(schema):
    """The names of a Schema's features absent in the SERVING environment: the labels."""
    return [f.name for f in schema.feature if SERVING in f.not_in_environment]


def single_class_labels(split, statistics, labels):
    """One line per label of `labels` that holds a single value in the split (when present)."""
    lines = []
    for dataset in statistics.datasets:
        for feature in dataset.features:
            stats, name = feature.num_stats, ".".join(feature.path.step)
            if (name in labels and stats.common_stats.num_non_missing > 0
                    and stats.min == stats.max):
                lines.append(f"split '{split}': feature '{name}': single class (every "
                             f"example has {name} {stats.min:g}; AUC is undefined)")
    return lines
