"""Logistic-regression baseline on the transformed examples: one-hot ids, one model per task.

Inputs are dicts of numpy arrays of transformed examples, as the trainers read them
(`modules.data.Examples.read_arrays`): int64 ids [rows] for single-valued features, int64 ids
[rows, max_list_length] padded with `PAD_ID` for multi-valued ones, `label` and `conversion`.

Design matrix (scipy CSR): one column per (feature, id) over the spec's embedded features (ids,
id lists, bucketised numerics), features sharing a vocabulary (FEA_VID and FEA_SVID, ...) still
getting their own columns, then one column per numeric feature holding its normalised value. Feature f owns
the columns offset_f + id for id in [0, width_f), width_f = 1 + its largest id in the *train* rows
(`feature_widths`). A single-valued id puts 1 in its column; a multi-valued feature puts 1/len on
each id of its list (len counts the non-padding ids: mean pooling, as in the model), so every
feature weighs the same in each row. Ids >= width_f (absent from train) get no column: such a
column would be zero on every train row, so its L2-regularised weight would be 0 anyway.

Tasks (the spec's): each is fitted on its train rows with its label (LT4REC: CTR on all rows
with `label`, CVR on the clicked rows with `conversion`; sklearn `LogisticRegression`, lbfgs, L2,
unpenalised intercept), once per C of the grid. Each task's C is the one with the best validation
AUC on its rows (`tasks.auc`; ties go to the smaller C); the eval arrays are scored only with the
chosen models, so nothing about them influences the choice. A product (CTCVR) scores the product
of its tasks' probabilities (ctr × cvr) on its rows.
"""
import time

import numpy as np
import scipy.sparse
from sklearn.linear_model import LogisticRegression

from modules import tasks
from modules.features import PAD_ID

DEFAULT_C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
MAX_ITER = 2000


def feature_widths(train, spec):
    """{embedded feature of `spec`: 1 + largest id in the train rows} (0 when the feature is all
    padding)."""
    return {f.name: int(np.max(train[f.name], initial=PAD_ID)) + 1
            for f in spec.features if f.embedded}


def design_matrix(arrays, widths, spec):
    """CSR [rows, sum(widths) + numeric features] matrix of the spec's features (see the module
    doc)."""
    rows = len(arrays[spec.label_columns()[0]])
    row_parts, column_parts, value_parts = [], [], []
    offset = 0
    for name in widths:
        ids = np.asarray(arrays[name]).reshape(rows, -1)
        present = ids != PAD_ID
        weight = 1.0 / np.maximum(present.sum(axis=1), 1)
        row, slot = np.nonzero(present & (ids < widths[name]))
        row_parts.append(row)
        column_parts.append(offset + ids[row, slot])
        value_parts.append(weight[row])
        offset += widths[name]
    for f in spec.features:
        if not f.embedded:
            row_parts.append(np.arange(rows))
            column_parts.append(np.full(rows, offset))
            value_parts.append(np.asarray(arrays[f.name], np.float64).reshape(rows))
            offset += 1
    return scipy.sparse.csr_matrix(
        (np.concatenate(value_parts), (np.concatenate(row_parts), np.concatenate(column_parts))),
        shape=(rows, offset))


def fit_and_score(train, validation, evaluation, spec, c_grid=DEFAULT_C_GRID):
    """Fit each task of `spec` (the config's spec) per C on its `train` rows, choose C on
    `validation`, score `evaluation`.

    Returns {output: eval AUC of the chosen models, for every task and product (a product scores
    the product of its tasks' probabilities), "validation": {task: AUC of the chosen C},
    "validation_by_c": {task: {C: AUC}}, "chosen_c": {task: C}, "train_s": seconds spent fitting
    every model}.
    """
    widths = feature_widths(train, spec)
    x_train, x_validation, x_eval = (design_matrix(a, widths, spec)
                                     for a in (train, validation, evaluation))
    result = {"validation": {}, "validation_by_c": {}, "chosen_c": {}}
    eval_scores = {}
    fit_s = 0.0
    for task in spec.task_names():
        label_name, rows_name = spec.eval_columns(task)
        rows = np.ones(len(train[label_name]), dtype=bool) if rows_name is None \
            else np.asarray(train[rows_name]) != 0
        labels = np.asarray(train[label_name])[rows]
        by_c, models = {}, {}
        for c in sorted(c_grid):
            start = time.perf_counter()
            models[c] = LogisticRegression(C=c, max_iter=MAX_ITER).fit(x_train[rows], labels)
            fit_s += time.perf_counter() - start
            by_c[c] = tasks.auc(spec, task, validation,
                                models[c].predict_proba(x_validation)[:, 1])
        chosen = max(by_c, key=by_c.get)
        result["validation_by_c"][task] = by_c
        result["validation"][task] = by_c[chosen]
        result["chosen_c"][task] = chosen
        eval_scores[task] = models[chosen].predict_proba(x_eval)[:, 1]
        result[task] = tasks.auc(spec, task, evaluation, eval_scores[task])
    for product in spec.products:
        result[product.name] = tasks.auc(spec, product.name, evaluation, np.prod(
            [eval_scores[task] for task in product.tasks], axis=0))
    result["train_s"] = fit_s
    return result
