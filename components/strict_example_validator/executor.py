"""Executor: TFX's ExampleValidator, then stop the run on the anomalies configured to block.

Each anomaly reason is sorted into a class of `checks.anomalies` (`anomaly_class`); a feature
whose reasons include a blocking class stops the run, the others are warnings. So do drift
(this span against the previous span the validator passed) and skew (training against logged
serving requests) over their thresholds (`distribution_checks.py`). Besides the schema
anomalies, a split where a label holds a single value always blocks: the trainers' and the
Evaluator's AUC is undefined on it (the schema cannot express this). The labels are the schema's
features absent in the SERVING environment (LT4REC: `label` and `cvrlabel`; an inferred schema
marks every column a task reads so).
"""
import json
import os

from absl import logging
from tfx.components.example_validator import executor as tfx_executor
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.types import artifact_utils
from tfx.utils import io_utils

from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.split_example_gen import spans
from components.strict_example_validator import distribution_checks as distribution
from modules.config import Config

SERVING = "SERVING"
CHECKS_KEY = "checks"
EXAMPLES_KEY = "examples"            # optional: ExampleGen's examples, for their span
HISTORY_KEY = "statistics_history"   # where each passed span's train statistics are kept
REPORT_FILE = "data_checks.json"     # in the anomalies artifact: warnings, drift, skew
# Anomaly reason types (tensorflow_metadata AnomalyInfo.Type) by class; the rest are "other".
_CLASSES = {
    "new_column": ("SCHEMA_NEW_COLUMN",),
    "missing_column": ("SCHEMA_MISSING_COLUMN", "FEATURE_TYPE_NOT_PRESENT",
                       "FEATURE_TYPE_NO_VALUES"),
    "missing_values": ("FEATURE_TYPE_LOW_FRACTION_PRESENT", "FEATURE_TYPE_LOW_NUMBER_PRESENT"),
    "out_of_domain": ("BOOL_TYPE_BIG_INT", "BOOL_TYPE_SMALL_INT", "BOOL_TYPE_UNEXPECTED_STRING",
                      "BOOL_TYPE_UNEXPECTED_FLOAT", "ENUM_TYPE_UNEXPECTED_STRING_VALUES",
                      "FEATURE_TYPE_HIGH_NUMBER_VALUES", "FEATURE_TYPE_LOW_NUMBER_VALUES",
                      "FLOAT_TYPE_BIG_FLOAT", "FLOAT_TYPE_SMALL_FLOAT", "FLOAT_TYPE_HAS_NAN",
                      "FLOAT_TYPE_HAS_INF", "INT_TYPE_BIG_INT", "INT_TYPE_SMALL_INT"),
    "wrong_type": tuple(name for name in anomalies_pb2.AnomalyInfo.Type.keys() if any(
        part in name for part in ("TYPE_BYTES_NOT", "TYPE_FLOAT_NOT", "TYPE_INT_NOT",
                                  "TYPE_STRING_NOT", "TYPE_NOT_", "_EXPECTED", "_NOW_",
                                  "UNKNOWN_TYPE_NUMBER", "FLOAT_TYPE_NON_STRING",
                                  "UNEXPECTED_DATA_TYPE")) and name != "FEATURE_TYPE_NOT_PRESENT"),
}
_CLASS_OF = {anomalies_pb2.AnomalyInfo.Type.Value(name): kind
             for kind, names in _CLASSES.items() for name in names}


class DataAnomaliesError(RuntimeError):
    """The data does not conform to the schema; the message names every feature and anomaly."""


def anomaly_class(reason_type):
    """The `checks.anomalies` class of an AnomalyInfo.Type value ("other" when unlisted)."""
    return _CLASS_OF.get(reason_type, "other")


class Executor(tfx_executor.Executor):
    """Validates like ExampleValidator, writes the anomalies artifact, checks drift and skew,
    then fails on blocking anomalies; else records the others (`warnings`, JSON) on the artifact,
    writes `data_checks.json` beside them and keeps this span's train statistics for the next
    span's drift check."""

    def Do(self, input_dict, output_dict, exec_properties):
        result = super().Do(input_dict, output_dict, exec_properties)
        checks = Config.from_json(exec_properties[CHECKS_KEY]).checks
        history = exec_properties.get(HISTORY_KEY)
        anomalies = output_dict["anomalies"][0]
        statistics = input_dict["statistics"][0]
        schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(
            artifact_utils.get_single_uri(input_dict["schema"])))
        labels = label_columns(schema)
        found, by_split = [], {}
        for split in artifact_utils.decode_split_names(anomalies.split_names):
            split_uri = artifact_utils.get_split_uri([anomalies], split)
            by_split[split] = stats_artifact_utils.load_statistics(statistics, split).proto()
            found += describe_anomalies(split, read_anomalies(split_uri))
            found += [(line, ["block"])
                      for line in single_class_labels(split, by_split[split], labels)]
        train = by_split["train"]
        examples = input_dict.get(EXAMPLES_KEY)
        span = (spans.span_of(examples[0]) if examples else None) or 0
        report, lines = distribution.check(checks, train, schema, span, history)
        found += lines
        actions = {**checks.anomalies, "block": "block"}
        blocking = [line for line, kinds in found if any(actions[k] == "block" for k in kinds)]
        warnings = [line for line, kinds in found if line not in blocking]
        if blocking:
            raise DataAnomaliesError(
                "input data does not pass the data checks (statistics at %s):\n  %s"
                % (statistics.uri, "\n  ".join(blocking + [f"(warning) {w}" for w in warnings])))
        for line in warnings:
            logging.warning("data check (warning, checks.anomalies): %s", line)
        report.update(span=span or None, warnings=warnings)
        io_utils.write_string_file(os.path.join(anomalies.uri, REPORT_FILE),
                                   json.dumps(report, indent=2, sort_keys=True))
        anomalies.set_string_custom_property("warnings", json.dumps(warnings))
        result.output_artifacts["anomalies"].artifacts[0].CopyFrom(anomalies.mlmd_artifact)
        if span and history:
            distribution.keep(history, span, train)
        return result


def read_anomalies(split_uri):
    """Read the Anomalies proto ExampleValidator wrote for one split."""
    path = os.path.join(split_uri, tfx_executor.DEFAULT_FILE_NAME)
    return anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))


def describe_anomalies(split, anomalies):
    """(line, classes) per anomalous feature: the line names the split, the feature, the short
    and long description and each reason's class; classes are those of its reasons."""
    found = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        kinds = sorted({anomaly_class(r.type) for r in info.reason}) or ["other"]
        reasons = "; ".join(r.description or r.short_description for r in info.reason)
        found.append((f"split '{split}': feature '{feature}': "
                      f"{info.short_description or 'anomaly'} ({reasons or info.description}) "
                      f"[{', '.join(kinds)}]", kinds))
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        found.append((f"split '{split}': dataset: {info.short_description} "
                       f"({info.description}) [other]", ["other"]))
    return found


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
