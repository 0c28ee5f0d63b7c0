"""The tasks of the spec (`spec.tasks`, `spec.products`): training losses and evaluation rows.

Each task reads the transformed columns Transform emits for it (`TaskSpec.label_column`,
`TaskSpec.rows_column`, its `target`); a product is evaluated on the rows of its first task
against the label of its last.
"""
import functools
import operator

import numpy as np
import tensorflow as tf
from sklearn.metrics import roc_auc_score


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


def _rows(rows_column, label_column, batch):
    """[batch] booleans: where the 0/1 `rows_column` is set (every row when it is None)."""
    if rows_column is None:
        return tf.ones_like(batch[label_column], dtype=tf.bool)
    return tf.not_equal(tf.cast(batch[rows_column], tf.float32), 0.0)


def train_rows(task, batch):
    """[batch] 1.0 on the rows `task` (a TaskSpec) trains on, else 0.0."""
    return tf.cast(_rows(task.rows_column, task.label_column, batch), tf.float32)


def per_example_loss(task, batch, logits):
    """Per-example training loss of `task` (a TaskSpec; zero on rows it does not train on)."""
    labels = tf.cast(batch[task.label_column], tf.float32)
    if task.loss == "focal":
        loss = focal_loss(labels, logits, *task.focal)
    elif task.loss == "bce":
        loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    else:
        target = tf.cast(batch[task.target], tf.float32) if task.target else labels
        loss = tf.square(tf.sigmoid(logits) - tf.clip_by_value(target, 0.0, 1.0))
    return loss * train_rows(task, batch)


def product_loss(spec, name, batch, log_probability):
    """Per-example binary cross-entropy of product `name` of `spec` (ESMM's CTCVR loss: the
    product's label against the product of its tasks' probabilities, given as the sum of their
    log-probabilities), on the product's rows (zero elsewhere)."""
    label_column, rows_column = spec.eval_columns(name)
    labels = tf.cast(batch[label_column], tf.float32)
    log_p = tf.minimum(log_probability, -1e-7)            # log(1 - p) stays finite
    loss = -(labels * log_p + (1.0 - labels) * tf.math.log(-tf.math.expm1(log_p)))
    return loss * tf.cast(_rows(rows_column, label_column, batch), tf.float32)


def product(probabilities):
    """A product output's score: the product of its tasks' probabilities (tensors)."""
    return functools.reduce(operator.mul, probabilities)


def eval_rows(spec, name, batch):
    """(0/1 labels, boolean row selector) output `name` (a task or product of `spec`) is
    evaluated on. Takes tensors or numpy arrays; returns tensors."""
    label_column, rows_column = spec.eval_columns(name)
    return tf.convert_to_tensor(batch[label_column]), _rows(rows_column, label_column, batch)


def class_rules(spec):
    """Each task's rows and classes as rules (`modules.rules`) over the raw columns, as
    SplitExampleGen's validation sizing reads them (`task_classes`)."""
    return [{"task": t.name, "positive": t.label, "rows": t.rows} for t in spec.tasks]


def defined_auc(name, result):
    """The AUC of a streamed `result`; MetricUndefinedError if its rows hold a single class."""
    if result["auc"] is None:
        raise _undefined(name, result["rows"])
    return result["auc"]


def auc(spec, name, arrays, scores):
    """sklearn's AUC of in-memory `scores` of output `name` on its eval rows (tests,
    baselines)."""
    labels, rows = (np.asarray(x) for x in eval_rows(spec, name, arrays))
    labels, scores = labels[rows], np.asarray(scores)[rows]
    if labels.size == 0 or np.unique(labels).size < 2:
        raise _undefined(name, labels.size)
    return float(roc_auc_score(labels, scores))


def _undefined(name, rows):
    return MetricUndefinedError(f"{name.upper()} AUC is undefined: the eval rows it is computed "
                                f"on ({rows} rows) hold a single class")
