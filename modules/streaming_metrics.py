"""AUC and calibration over any number of rows in bounded memory: bucketed score counts per label.

Scores in [0, 1] fall into `BUCKETS` equal-width buckets; each output keeps, on the device, the
count of positive and of negative eval rows per bucket plus the sums calibration needs. AUC is
then exact for every pair of rows in different buckets; a positive and a negative in the same
bucket count one half (as tied scores do in sklearn). So the error is at most half the share of
such pairs, which `result` reports as `auc_max_error` (about 1e-5 on the default data at 2^20 buckets).
"""
import numpy as np
import tensorflow as tf

BUCKETS = 1 << 20


class ScoreHistogram:
    """Per-bucket positive/negative counts of one output's scores on its eval rows."""

    def __init__(self, buckets=BUCKETS):
        self.buckets = buckets
        self.positives = tf.Variable(tf.zeros([buckets], tf.int64), trainable=False)
        self.negatives = tf.Variable(tf.zeros([buckets], tf.int64), trainable=False)
        self.score_sum = tf.Variable(tf.zeros([], tf.float64), trainable=False)
        self.label_sum = tf.Variable(tf.zeros([], tf.float64), trainable=False)

    def reset(self):
        """Zero every count."""
        for var in (self.positives, self.negatives, self.score_sum, self.label_sum):
            var.assign(tf.zeros_like(var))

    def update(self, labels, scores, rows):
        """Add the rows where `rows` is true (graph-friendly; labels are 0/1)."""
        labels = tf.boolean_mask(tf.cast(labels, tf.float32), rows)
        scores = tf.boolean_mask(tf.cast(scores, tf.float32), rows)
        index = tf.clip_by_value(tf.cast(tf.floor(scores * self.buckets), tf.int32), 0,
                                 self.buckets - 1)
        positive = labels > 0.5
        ones = tf.ones_like(index, tf.int64)
        self.positives.scatter_add(tf.IndexedSlices(tf.boolean_mask(ones, positive),
                                                    tf.boolean_mask(index, positive)))
        self.negatives.scatter_add(tf.IndexedSlices(tf.boolean_mask(ones, ~positive),
                                                    tf.boolean_mask(index, ~positive)))
        self.score_sum.assign_add(tf.reduce_sum(tf.cast(scores, tf.float64)))
        self.label_sum.assign_add(tf.reduce_sum(tf.cast(labels, tf.float64)))

    def result(self):
        """{"auc", "auc_max_error", "calibration", "rows", "positives"} from the counts so far.

        `auc` is None when the rows hold a single class; `calibration` (mean score / mean label)
        is None without positives.
        """
        pos = self.positives.numpy().astype(np.float64)
        neg = self.negatives.numpy().astype(np.float64)
        total_pos, total_neg = pos.sum(), neg.sum()
        rows = int(total_pos + total_neg)
        result = {"rows": rows, "positives": int(total_pos), "auc": None, "auc_max_error": None,
                  "calibration": None}
        label_sum = float(self.label_sum.numpy())
        if label_sum > 0:
            result["calibration"] = float(self.score_sum.numpy()) / label_sum
        if total_pos > 0 and total_neg > 0:
            below = np.cumsum(neg) - neg
            pairs = total_pos * total_neg
            result["auc"] = float(np.sum(pos * (below + 0.5 * neg)) / pairs)
            result["auc_max_error"] = float(0.5 * np.sum(pos * neg) / pairs)
        return result
