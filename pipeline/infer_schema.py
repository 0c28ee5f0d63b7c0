"""`lt4rec schema`: a starting `schema.pbtxt` for a spec's data, inferred from a sample to review.

TFDV infers types, presence and value counts from the statistics of the data; the spec then sets
what it knows: ids, id lists and keys are BYTES without a value domain (unseen ids are normal),
every column a task reads is a label, absent in the SERVING environment, with a [0, 1] domain
when a task reads it as its 0/1 label or rows, and no feature has a `shape` (Transform reads
every feature as sparse and densifies it itself). Every column the spec reads must be in the
data, typed as its role needs, or nothing is written.
"""
import os

from tensorflow_metadata.proto.v0 import schema_pb2

from modules.errors import ConfigError
from pipeline import convert

SERVING, TRAINING = "SERVING", "TRAINING"


class SchemaError(ConfigError):
    """The data cannot back the spec (a column missing or of the wrong type)."""


def infer(pattern, spec):
    """The Schema of the TFRecords matching `pattern` (gzip when named .gz) for `spec`."""
    import tensorflow_data_validation as tfdv
    statistics = tfdv.generate_statistics_from_tfrecord(data_location=pattern)
    schema = tfdv.infer_schema(statistics, infer_feature_shape=False)
    types = {f.name: schema_pb2.FeatureType.Name(f.type) for f in schema.feature}
    problems = spec.schema_problems(types)
    if problems:
        raise SchemaError(f"invalid input: the data {pattern} does not back the spec: "
                          + "; ".join(problems))
    roles = convert.roles(spec)
    del schema.string_domain[:]
    for feature in schema.feature:
        role = roles.get(feature.name)
        if role in ("id", "id_list", "key"):
            feature.ClearField("domain_info")          # any value domain (string or int)
        elif role in ("task", "binary"):
            feature.float_domain.disallow_nan = feature.float_domain.disallow_inf = True
            if role == "binary":
                feature.float_domain.min, feature.float_domain.max = 0.0, 1.0
            feature.not_in_environment.append(SERVING)
    schema.default_environment[:] = [TRAINING, SERVING]
    return schema, statistics.datasets[0].num_examples


def write(schema, path, source, examples):
    """Write `schema` as text to `path` (aside, then renamed), headed by where it came from."""
    from google.protobuf import text_format
    if os.path.exists(path):
        raise SchemaError(f"invalid output: --out {path!r} exists (review and edit it, or "
                          f"write another file)")
    header = (f"# Inferred by `lt4rec schema` from {source} ({examples} examples): a starting\n"
              f"# point to review (presence, value counts, label domains) before production.\n")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(header + text_format.MessageToString(schema))
    os.replace(path + ".tmp", path)
    return path
