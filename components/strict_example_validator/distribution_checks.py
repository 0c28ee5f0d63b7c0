"""Drift and skew (`checks.drift`, `checks.skew`): TFDV's comparators between this span's train
statistics and the previous span's, and between training statistics and those of logged
serving requests.

The previous span's statistics are those the validator kept when it passed that span:
`<history>/span-<N>/FeatureStats.pb` (a DatasetFeatureStatisticsList), under the pipeline root,
so local and Kubeflow runs find them without querying the metadata store.
"""
import os
import re

from absl import logging

import tensorflow as tf
import tensorflow_data_validation as tfdv
from apache_beam.options.pipeline_options import PipelineOptions
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

STATS_FILE = "FeatureStats.pb"
_SPAN_DIR = re.compile(r"^span-([0-9]+)/?$")
_MEASURES = {anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: "L-infinity distance",
             anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE:
                 "Jensen-Shannon divergence"}


def check(checks, train, schema, span, history):
    """The drift and skew checks of the `checks` config section on the `train` statistics of
    span `span` (0: none); ({"drift": ..., "skew": ...} for the report, [(line over threshold,
    [its class])]). Drift compares with the newest span before `span` kept under `history`."""
    report, found = {"drift": None, "skew": None}, []
    previous = previous_span(history, span) if span and history else None
    if checks.drift and previous:
        measured = distances(train, read_statistics(previous[1]), schema, checks.drift, "drift")
        report["drift"] = {"previous_span": previous[0], "features": measured}
        found += [(line, ["drift"]) for line in over_threshold(
            measured, "drift", f"from span {previous[0]} to span {span}")]
    elif checks.drift:
        logging.info("drift not checked: no span before %s was kept under %s", span, history)
    if checks.skew:
        measured = distances(train, serving_statistics(checks.serving_logs), schema, checks.skew,
                             "skew")
        report["skew"] = {"serving_logs": checks.serving_logs, "features": measured}
        found += [(line, ["skew"]) for line in over_threshold(
            measured, "skew", f"between training and serving ({checks.serving_logs})")]
    return report, found


def with_comparators(schema, thresholds, kind):
    """A copy of `schema` with a `kind` comparator ("drift" or "skew") on each feature of
    `thresholds` ({name: threshold}): L-infinity for string and categorical int features,
    Jensen-Shannon divergence for numeric ones. ValueError naming a feature the schema lacks."""
    schema = schema_pb2.Schema.FromString(schema.SerializeToString())
    features = {f.name: f for f in schema.feature}
    for name, threshold in sorted(thresholds.items()):
        if name not in features:
            raise ValueError(f"checks.{kind}.{name}: the schema has no feature '{name}' "
                             f"(features: {sorted(features)})")
        feature = features[name]
        comparator = getattr(feature, f"{kind}_comparator")
        if feature.type == schema_pb2.BYTES or (
                feature.HasField("int_domain") and feature.int_domain.is_categorical):
            comparator.infinity_norm.threshold = threshold
        else:
            comparator.jensen_shannon_divergence.threshold = threshold
    return schema


def distances(current, control, schema, thresholds, kind):
    """{feature: {"measure", "value", "threshold"}} between the statistics `current` and
    `control` (the previous span's for kind "drift", serving's for "skew") of each feature of
    `thresholds`; a feature TFDV could not measure (absent from either side) has value None."""
    schema = with_comparators(schema, thresholds, kind)
    control_key = "previous_statistics" if kind == "drift" else "serving_statistics"
    anomalies = tfdv.validate_statistics(current, schema, **{control_key: control})
    found = {name: {"measure": None, "value": None, "threshold": threshold}
             for name, threshold in thresholds.items()}
    for info in anomalies.drift_skew_info:
        name = ".".join(info.path.step)
        for measurement in getattr(info, f"{kind}_measurements"):
            if name in found:
                found[name] = {"measure": _MEASURES.get(measurement.type, "distance"),
                               "value": measurement.value, "threshold": measurement.threshold}
    return found


def over_threshold(found, kind, where):
    """One line per feature of `distances` over its threshold (or not measured), saying
    `where` the distance was measured, e.g. "from span 1 to span 2"."""
    lines = []
    for name, d in sorted(found.items()):
        if d["value"] is None:
            lines.append(f"feature '{name}': {kind} not measured {where} (the feature is missing "
                         f"from one side's statistics) [{kind}]")
        elif d["value"] > d["threshold"]:
            lines.append(f"feature '{name}': {kind} {where}: {d['measure']} {d['value']:.4f} > "
                         f"checks.{kind}.{name} = {d['threshold']:g} [{kind}]")
    return lines


def previous_span(history, span):
    """(span number, statistics path) of the newest span before `span` kept under `history`;
    None when there is none."""
    if not tf.io.gfile.isdir(history):
        return None
    kept = []
    for name in tf.io.gfile.listdir(history):
        match = _SPAN_DIR.match(name)
        path = os.path.join(history, name.rstrip("/"), STATS_FILE)
        if match and int(match.group(1)) < span and tf.io.gfile.exists(path):
            kept.append((int(match.group(1)), path))
    return max(kept) if kept else None


def read_statistics(path):
    """A DatasetFeatureStatisticsList file."""
    with tf.io.gfile.GFile(path, "rb") as f:
        return statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())


def keep(history, span, statistics):
    """Write `statistics` as span `span`'s under `history` (whole or not at all)."""
    directory = os.path.join(history, f"span-{span}")
    tf.io.gfile.makedirs(directory)
    path = os.path.join(directory, STATS_FILE)
    with tf.io.gfile.GFile(path + ".partial", "wb") as f:
        f.write(statistics.SerializeToString())
    tf.io.gfile.rename(path + ".partial", path, overwrite=True)


def serving_statistics(location):
    """Statistics of the gzip TFRecords of tf.Example at `location` (a directory or a glob),
    computed in this process (Beam's DirectRunner: a sample of requests, not a day);
    ValueError naming it when nothing matches."""
    pattern = os.path.join(location, "*") if tf.io.gfile.isdir(location) else location
    if not [p for p in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(p)]:
        raise ValueError(f"checks.serving_logs: no file matches {pattern!r}")
    return tfdv.generate_statistics_from_tfrecord(
        data_location=pattern, pipeline_options=PipelineOptions(
            ["--direct_running_mode=in_memory", "--direct_num_workers=1"]))
