"""TFX Transform module: every feature of the config's spec, the reference scores and the labels.

`preprocessing_fn` is referenced by name (`modules.preprocessing.preprocessing_fn`) from the
pipeline; its `custom_config['config']` is a `Config.to_json()` string carrying the spec
(`modules.spec`). Outputs (all dense, under the raw column's name unless said otherwise):
- `id` features: int64 ids, shape [batch]; `id_list` features: int64 ids, shape
  [batch, max_length], padded with -1, truncated. Each vocabulary group gets one vocabulary over
  the union of its members' values, so the same string gets the same id in every member. Integer
  ids are vocabularised as their decimal strings. Vocabularies are text files (line breaks inside
  values become spaces): TFT's `tfrecord_gzip` vocabularies load as dataset-initialised tables
  that TF 2.16 cannot re-export inside the serving SavedModel;
- `numeric` features: float32 z-scores of the value (after log(1 + max(x, 0)) with
  `normalize: log1p`), missing values taking the feature's `default` first; with `buckets: N`,
  the int64 quantile bucket (0..N-1) of the value instead;
- reference scores: float32 under `spec.score_key(column)` (-1 when not a number);
- the label columns the tasks read, dense under their names (0 when absent), and each rule label
  or rule rows mask of a task as float 0/1 under its name (`Spec.rule_columns`). For LT4REC:
  `label` (int64 click), `cvrlabel` (float) and `conversion` (the cvr task's label rule).
"""
import tensorflow as tf
import tensorflow_transform as tft

from modules import features, rules, spec as spec_lib
from modules.config import Config
from modules.features import PAD_ID

_NUMBER = r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?"


def preprocessing_fn(inputs, custom_config=None):
    """TFT preprocessing_fn; `custom_config['config']` is a `Config.to_json()` string."""
    config = Config.from_json(custom_config["config"]) if custom_config else Config()
    spec = config.spec
    missing = [c for c in spec.fields() + [r.column for r in spec.reference_scores] +
               spec.label_columns() if c not in inputs]
    if missing:
        raise ValueError(f"the spec's columns {missing} are missing from the schema's features "
                         f"{sorted(inputs)}")
    strings = {f.name: _id_strings(inputs[f.name], f.kind) for f in spec.features
               if f.kind != "numeric"}
    outputs = {}
    for group, members in spec.vocabulary_groups().items():
        top_k, frequency_threshold, num_oov = spec.vocab_settings(group, config.vocab)
        vocab = tft.vocabulary(
            tf.concat([_flat_values(strings[m]) for m in members], axis=0),
            top_k=top_k, frequency_threshold=frequency_threshold,
            vocab_filename=spec_lib.vocabulary_name(group), file_format="text")
        for member in members:
            outputs[member] = _apply(strings[member], vocab, num_oov,
                                     spec.list_length(member, config.data.max_list_length))
    for feature in spec.of_kind("numeric"):
        outputs[feature.name] = _numeric(inputs[feature.name], feature)
    labels = {column: _dense(inputs[column], 0) for column in spec.label_columns()}
    outputs.update(labels)
    for name, rule in spec.rule_columns().items():
        outputs[name] = tf.cast(rules.holds(rules.parse(rule), labels,
                                            rules.tensorflow_backend()), tf.float32)
    for reference in spec.reference_scores:
        outputs[spec_lib.score_key(reference.column)] = parse_score(inputs[reference.column])
    return outputs


def parse_score(value):
    """A score column as float32 [batch]: numbers as they are, strings parsed; anything that is
    not a number (or absent) becomes -1."""
    if value.dtype != tf.string:
        return _dense(tf.cast(value, tf.float32), -1.0)
    strings = _dense(value, features.MISSING)
    valid = tf.strings.regex_full_match(strings, _NUMBER)
    return tf.strings.to_number(tf.where(valid, strings, "-1"), tf.float32)


def _id_strings(value, kind):
    """An id feature's values as cleaned strings: [batch] for `id` ("-1" when absent), the
    (sparse) lists for `id_list`."""
    if value.dtype != tf.string:
        value = _map_values(value, tf.strings.as_string)
    if kind == "id":
        value = _dense(value, features.MISSING)
    return _map_values(value, lambda v: tf.strings.regex_replace(v, r"[\r\n]", " "))


def _numeric(value, feature):
    """A numeric feature's transformed column (see the module docstring)."""
    default = 0.0 if feature.default is None else float(feature.default)
    x = _dense(tf.cast(value, tf.float32), default)
    if feature.buckets:
        return tft.bucketize(x, feature.buckets)
    if feature.normalize == "log1p":
        x = tf.math.log1p(tf.maximum(x, 0.0))
    return tft.scale_to_z_score(x)


def _map_values(value, fn):
    """`fn` applied to a dense tensor, or to a sparse tensor's values."""
    if isinstance(value, tf.SparseTensor):
        return tf.SparseTensor(value.indices, fn(value.values), value.dense_shape)
    return fn(value)


def _flat_values(value):
    return value.values if isinstance(value, tf.SparseTensor) else tf.reshape(value, [-1])


def _dense(value, default):
    """First value of a (sparse or dense) feature as a [batch] tensor; `default` when absent."""
    if isinstance(value, tf.SparseTensor):
        value = tf.sparse.to_dense(value, default_value=default)
    value = tf.reshape(value, [tf.shape(value)[0], -1])
    pad = tf.fill([tf.shape(value)[0], 1], tf.constant(default, dtype=value.dtype))
    return tf.concat([value, pad], axis=1)[:, 0]


def _apply(value, vocab, num_oov, max_list_length):
    """Map strings to ids; multi-valued features to [batch, max_list_length] padded ids."""
    ids = tft.apply_vocabulary(value, vocab, num_oov_buckets=num_oov, file_format="text")
    if not isinstance(ids, tf.SparseTensor):
        return ids
    dense = tf.sparse.to_dense(ids, default_value=PAD_ID)
    pad = tf.fill([tf.shape(dense)[0], max_list_length], tf.constant(PAD_ID, tf.int64))
    return tf.reshape(tf.concat([dense, pad], axis=1)[:, :max_list_length], [-1, max_list_length])
