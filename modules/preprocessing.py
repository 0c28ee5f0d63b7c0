"""TFX Transform module: vocabularise every string feature and derive the labels.

`preprocessing_fn` is referenced by name (`modules.preprocessing.preprocessing_fn`) from the
pipeline. Each vocabulary group of `features.vocabulary_groups()` gets one vocabulary computed over
the union of its members' values, so the same string gets the same id in every member.
Vocabularies are text files (line breaks inside values become spaces): TFT's `tfrecord_gzip`
vocabularies load as dataset-initialised tables that TF 2.16 cannot re-export inside the serving
SavedModel.
Outputs (all dense):
- single-valued features: int64 ids, shape [batch];
- multi-valued features: int64 ids, shape [batch, max_list_length], padded with -1, truncated;
- `label` (int64 click), `cvrlabel` (float), `conversion` (float 0/1: clicked and
  cvrlabel >= cvr_threshold), `pctr_score` (float; -1 when unparseable).
"""
import tensorflow as tf
import tensorflow_transform as tft

from modules import features
from modules.config import Config
from modules.features import PAD_ID

_NUMBER = r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?"


def preprocessing_fn(inputs, custom_config=None):
    """TFT preprocessing_fn; `custom_config['config']` is a `Config.to_json()` string."""
    config = Config.from_json(custom_config["config"]) if custom_config else Config()
    strings = {name: _clean(_dense(inputs[name], features.MISSING))
               for name in features.SINGLE_VALUED}
    strings.update({name: _clean(inputs[name]) for name in features.MULTI_VALUED})
    outputs = {}
    for group, members in features.vocabulary_groups().items():
        top_k, frequency_threshold, num_oov = config.vocab.for_group(group)
        vocab = tft.vocabulary(
            tf.concat([_flat_values(strings[m]) for m in members], axis=0),
            top_k=top_k, frequency_threshold=frequency_threshold,
            vocab_filename=features.vocabulary_name(group), file_format="text")
        for member in members:
            outputs[member] = _apply(strings[member], vocab, num_oov, config.data.max_list_length)
    label = _dense(inputs[features.LABEL], 0)
    cvrlabel = _dense(inputs[features.CVR_LABEL], 0.0)
    clicked = tf.equal(label, 1)
    outputs[features.LABEL] = label
    outputs[features.CVR_LABEL] = cvrlabel
    outputs[features.CONVERSION] = tf.cast(
        tf.logical_and(clicked, cvrlabel >= config.data.cvr_threshold), tf.float32)
    outputs[features.PCTR_SCORE] = parse_score(_dense(inputs[features.PCTR], features.MISSING))
    return outputs


def parse_score(strings):
    """Parse score strings to float32; anything that is not a number becomes -1."""
    valid = tf.strings.regex_full_match(strings, _NUMBER)
    return tf.strings.to_number(tf.where(valid, strings, "-1"), tf.float32)


def _clean(value):
    """Replace line breaks (text vocabulary files are line-based) in string values."""
    if isinstance(value, tf.SparseTensor):
        return tf.SparseTensor(value.indices, _clean(value.values), value.dense_shape)
    return tf.strings.regex_replace(value, r"[\r\n]", " ")


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
