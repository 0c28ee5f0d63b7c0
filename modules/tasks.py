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


def eval_rows(task, arrays):
    """(labels, row selector) the task is evaluated on: CTR all rows, CVR clicked rows."""
    if task == "ctr":
        return arrays[features.LABEL], np.ones(len(arrays[features.LABEL]), dtype=bool)
    if task == "cvr":
        return arrays[features.CONVERSION], arrays[features.LABEL] == 1
    if task == "ctcvr":
        return arrays[features.CONVERSION], np.ones(len(arrays[features.LABEL]), dtype=bool)
    raise KeyError(task)


def calibration(task, arrays, scores):
    """Mean score / mean label on the task's eval rows (1.0: calibrated on average)."""
    labels, rows = eval_rows(task, arrays)
    mean_label = float(np.mean(np.asarray(labels)[rows])) if rows.any() else 0.0
    return float(np.mean(np.asarray(scores)[rows])) / mean_label if mean_label > 0 else None


def auc(task, arrays, scores):
    """The task's eval AUC (CTR over all rows, CVR over clicked rows, CTCVR over all rows)."""
    labels, rows = eval_rows(task, arrays)
    labels, scores = np.asarray(labels)[rows], np.asarray(scores)[rows]
    if labels.size == 0 or np.unique(labels).size < 2:
        raise MetricUndefinedError(
            f"{task.upper()} AUC is undefined: the eval rows it is computed on "
            f"({labels.size} rows) hold a single class")
    return float(roc_auc_score(labels, scores))
