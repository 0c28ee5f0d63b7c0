"""Synthetic data for any spec (`lt4rec synth --spec FILE`), for trying a spec before real logs.

The story: every id of a vocabulary group has a latent vector; a row draws its ids (popular ids
more often), its list ids and its numeric values (each leaning on the row's latent state), and
its label columns from that state. The first half of the label columns lean mostly on one shared
direction, the rest mostly on their own, so some tasks share structure and others do not. A
column a task reads as its 0/1 label or rows is a coin with that odds; any other label column (one
rules read, e.g. `watch_ratio >= 0.9`) is a rate in [0, 1]. Tasks are drawn in order, and a
task's new label columns are zero outside its rows (a like only after a click). Rows are written
through `convert.example`, typed as `lt4rec convert` types them. Deterministic (seeded).
"""
import os

import numpy as np
import tensorflow as tf

from modules import rules
from pipeline import convert

LATENT = 4
ROWS_PER_REQUEST = 4


def rows(spec, count, seed):
    """`count` rows ({column: value}) for `spec`."""
    rng = np.random.default_rng(seed)
    pools = {group: rng.normal(0, 1, (max(8, count // 20), LATENT))
             for group in spec.vocabulary_groups()}
    state = np.zeros((count, LATENT))
    columns = {}
    for feature in spec.features:
        if feature.kind == "numeric":
            weights = rng.normal(0, 1, LATENT)
            values = rng.gamma(2.0, 1.0, count) + np.tanh(state @ weights)
            columns[feature.name] = np.round(values * 10, 3)
            state[:, 0] += 0.3 * (values - values.mean()) / (values.std() + 1e-9)
            continue
        pool = pools[feature.table]
        popularity = 1.0 / np.arange(1, len(pool) + 1)
        if feature.kind == "id":
            ids = rng.choice(len(pool), count, p=popularity / popularity.sum())
            columns[feature.name] = [f"{feature.table}{i}" for i in ids]
            state += pool[ids]
        else:
            length = feature.max_length or 4
            lists = [rng.choice(len(pool), rng.integers(0, length + 1)) for _ in range(count)]
            columns[feature.name] = ["|".join(f"{feature.table}{i}" for i in ids) for ids in lists]
            state += np.array([pool[ids].mean(axis=0) if len(ids) else np.zeros(LATENT)
                               for ids in lists])
    state /= np.sqrt(max(1, len(spec.features)))
    _labels(spec, state, rng, columns)
    for key in spec.keys:
        columns[key] = [f"r{i // ROWS_PER_REQUEST}" for i in range(count)]
    for reference in spec.reference_scores:
        label = spec.task(reference.task).columns()[0]
        noisy = np.asarray(columns[label], float) + rng.normal(0, 0.5, count)
        columns[reference.column] = np.round(1 / (1 + np.exp(-noisy)), 6)
    return [{name: values[i] for name, values in columns.items()} for i in range(count)]


def _labels(spec, state, rng, columns):
    """Each task's label columns, in task order, zero outside the task's rows."""
    roles = convert.roles(spec)
    names = spec.label_columns()
    shared = rng.normal(0, 1, LATENT)
    for task in spec.tasks:
        new = [c for c in task.columns() if c not in columns]
        for column in new:
            index = names.index(column)
            lean = 0.8 if index < (len(names) + 1) // 2 else 0.2
            logit = 2.0 * (lean * state @ shared + (1 - lean) * state @ rng.normal(0, 1, LATENT))
            probability = 1 / (1 + np.exp(-(logit - 0.5)))
            columns[column] = (rng.random(len(logit)) < probability).astype(float) \
                if roles[column] == "binary" else np.round(
                    np.clip(probability + rng.normal(0, 0.1, len(logit)), 0, 1), 3)
        if task.rows and new:
            node = rules.parse(task.rows)
            read = rules.columns(node)
            inside = rules.holds(node, {c: np.asarray(columns[c], float) for c in read},
                                 rules.NUMPY)
            for column in new:
                if column not in read:
                    columns[column] = np.where(inside, columns[column], 0.0)


def write(spec, out_dir, count, seed, rows_per_file=100000):
    """Write `count` rows for `spec` as gzip TFRecord shards under `out_dir`; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    wanted = convert.roles(spec)
    data = rows(spec, count, seed)
    paths = []
    for shard, start in enumerate(range(0, count, rows_per_file)):
        path = os.path.join(out_dir, f"synthetic-{shard:05d}.tfrecord.gz")
        with tf.io.TFRecordWriter(path + ".tmp", options="GZIP") as writer:
            for number, row in enumerate(data[start:start + rows_per_file], start=start + 1):
                writer.write(convert.example(row, wanted, "|", f"synthetic row {number}")
                             .SerializeToString(deterministic=True))
        os.replace(path + ".tmp", path)
        paths.append(path)
    return paths
