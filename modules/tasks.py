"""The two tasks: their training losses and their evaluation labels."""
import numpy as np
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from modules import features


class MetricUndefinedError(ValueError):
    """AUC is undefined because the evaluated rows hold a single class."""


def focal_loss(labels, logits, alpha, gamma):
    """Per-example binary focal loss on sigmoid(logits) (Lin et al.), numerically stable."""
    y = tf.cast(labels, tf.float32)
    p = tf.sigmoid(logits)
    p_t = y * p + (1.0 - y) * (1.0 - p)
    alpha_t = y * alpha + (1.0 - y) * (1.0 - alpha)
    log_p_t = y * tf.math.log_sigmoid(logits) + (1.0 - y) * tf.math.log_sigmoid(-logits)
    return -alpha_t * tf.pow(1.0 - p_t, gamma) * log_p_t


def train_rows(task, batch):
    """[batch] 1.0 on the rows `task` trains on (CTR: all, CVR: clicked), else 0.0."""
    if task == "ctr":
        return tf.ones_like(batch[features.LABEL], dtype=tf.float32)
    return tf.cast(batch[features.LABEL], tf.float32)


def per_example_loss(task, batch, logits, model_config):
    """Per-example training loss of `task` (zero on rows the task does not train on)."""
    if task == "ctr" and model_config.ctr_loss == "bce":
        return tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.cast(batch[features.LABEL], tf.float32), logits=logits)
    if task == "ctr":
        return focal_loss(batch[features.LABEL], logits, model_config.focal_alpha,
                          model_config.focal_gamma)
    clicked = train_rows(task, batch)
    if model_config.cvr_loss == "bce":
        loss = tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.cast(batch[features.CONVERSION], tf.float32), logits=logits)
    else:
        target = tf.clip_by_value(tf.cast(batch[features.CVR_LABEL], tf.float32), 0.0, 1.0)
        loss = tf.square(tf.sigmoid(logits) - target)
    return loss * clicked


def eval_rows(name, batch):
    """(0/1 labels, boolean row selector) output `name` is evaluated on: CTR all rows, CVR
    clicked rows, CTCVR all rows. Takes tensors or numpy arrays; returns
    tensors."""
    clicks = tf.convert_to_tensor(batch[features.LABEL])
    if name == "ctr":
        return clicks, tf.ones_like(clicks, dtype=tf.bool)
    if name == "cvr":
        return batch[features.CONVERSION], tf.equal(clicks, 1)
    if name == "ctcvr":
        return batch[features.CONVERSION], tf.ones_like(clicks, dtype=tf.bool)
    raise KeyError(name)


CLICKED = f"{features.LABEL} == 1"        # the rule of a clicked row


def conversion_rule(data_config):
    """The rule (`modules.rules`) of a conversion: clicked and cvrlabel >= data.cvr_threshold.
    Transform derives the `conversion` column from it, validation sizing counts by it."""
    return f"{CLICKED} and {features.CVR_LABEL} >= {data_config.cvr_threshold!r}"


def class_rules(data_config):
    """Each task's rows and classes as rules (`modules.rules`) over the raw columns, as
    SplitExampleGen's validation sizing reads them (`task_classes`): CTR all rows, clicked or
    not; CVR clicked rows, converted or not."""
    return [{"task": "ctr", "positive": CLICKED, "rows": ""},
            {"task": "cvr", "positive": conversion_rule(data_config), "rows": CLICKED}]


def defined_auc(name, result):
    """The AUC of a streamed `result`; MetricUndefinedError if its rows hold a single class."""
    if result["auc"] is None:
        raise _undefined(name, result["rows"])
    return result["auc"]


def auc(task, arrays, scores):
    """sklearn's AUC of in-memory `scores` on the task's eval rows (tests, baselines)."""
    labels, rows = (np.asarray(x) for x in eval_rows(task, arrays))
    labels, scores = labels[rows], np.asarray(scores)[rows]
    if labels.size == 0 or np.unique(labels).size < 2:
        raise _undefined(task, labels.size)
    return float(roc_auc_score(labels, scores))


def _undefined(name, rows):
    return MetricUndefinedError(f"{name.upper()} AUC is undefined: the eval rows it is computed "
                                f"on ({rows} rows) hold a single class")
