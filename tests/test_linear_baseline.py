"""Tests of the logistic-regression baseline (benchmarks/linear_baseline.py)."""
import numpy as np
import pytest

from benchmarks import linear_baseline
from conftest import toy_arrays
from modules import features
from modules.config import Config

SPEC = Config().spec


@pytest.fixture(scope="module")
def splits():
    """Toy train / validation / eval arrays (click planted on FEA_VID, conversion on FEA_CP)."""
    return toy_arrays(1200, seed=1), toy_arrays(600, seed=2), toy_arrays(600, seed=3)


@pytest.fixture(scope="module")
def baseline(splits):
    return linear_baseline.fit_and_score(*splits, SPEC)


def _relabelled(arrays, label, conversion):
    return {**arrays, features.LABEL: label, features.CONVERSION: conversion.astype(np.float32)}


def test_design_matrix_has_one_column_per_feature_and_train_id():
    single = {name: np.array([0, 1, 2]) for name in features.SINGLE_VALUED}
    multi = {name: np.array([[0, 1, -1], [2, -1, -1], [-1, -1, -1]])
             for name in features.MULTI_VALUED}
    train = {**single, **multi, "FEA_VID": np.array([0, 3, 1]), features.LABEL: np.zeros(3)}
    widths = linear_baseline.feature_widths(train, SPEC)
    assert widths == {name: 4 if name == "FEA_VID" else 3 for name in features.STRING_FEATURES}
    matrix = linear_baseline.design_matrix(train, widths, SPEC).toarray()
    assert matrix.shape == (3, sum(widths.values()))
    offsets = dict(zip(features.STRING_FEATURES, np.cumsum([0] + list(widths.values()))))
    vid, ucat = offsets["FEA_VID"], offsets["FEA_UCAT"]
    assert matrix[1, vid:vid + 4].tolist() == [0, 0, 0, 1]
    assert matrix[0, ucat:ucat + 3].tolist() == [0.5, 0.5, 0]      # 1/len, padding ignored
    assert matrix[1, ucat:ucat + 3].tolist() == [0, 0, 1]
    assert matrix.sum(axis=1).tolist() == [20, 20, 15]             # one unit per present feature
    unseen = linear_baseline.design_matrix({**train, "FEA_VID": np.array([7, 0, 9])}, widths,
                                           SPEC)
    assert unseen.toarray()[:, vid:vid + 4].sum(axis=1).tolist() == [0, 1, 0]


def test_planted_signal_is_learned(baseline):
    # Measured: CTR 0.997, CVR 0.994, CTCVR 0.995 (0.997-0.9997 / 0.97-0.99 over 3 seed triples).
    assert baseline["ctr"] > 0.98
    assert baseline["cvr"] > 0.93
    assert baseline["ctcvr"] > 0.95
    for task in ("ctr", "cvr"):
        by_c = baseline["validation_by_c"][task]
        assert list(by_c) == sorted(linear_baseline.DEFAULT_C_GRID)
        assert baseline["validation"][task] == by_c[baseline["chosen_c"][task]] == max(
            by_c.values())
    assert baseline["train_s"] > 0


def test_eval_arrays_do_not_influence_the_chosen_c(splits, baseline):
    train, validation, evaluation = splits
    flipped_click = 1 - evaluation[features.LABEL]
    scrambled = _relabelled(evaluation, flipped_click,
                            flipped_click * (evaluation["FEA_CP"] % 3 != 0))
    result = linear_baseline.fit_and_score(train, validation, scrambled, SPEC)
    for key in ("chosen_c", "validation", "validation_by_c"):
        assert result[key] == baseline[key], key
    assert result["ctr"] == pytest.approx(1 - baseline["ctr"])


@pytest.mark.parametrize("task", ["ctr", "cvr"])
def test_c_is_chosen_by_validation_auc(splits, baseline, task):
    train, validation, evaluation = splits
    click, conversion = validation[features.LABEL], validation[features.CONVERSION]
    if task == "ctr":   # inverted clicks; conversion still planted on the new clicked rows
        inverted = _relabelled(validation, 1 - click, (1 - click) * (validation["FEA_CP"] % 3 == 0))
    else:
        inverted = _relabelled(validation, click, click * (1 - conversion))
    result = linear_baseline.fit_and_score(train, inverted, evaluation, SPEC)
    smallest = min(linear_baseline.DEFAULT_C_GRID)
    assert baseline["chosen_c"][task] != smallest
    assert result["chosen_c"][task] == smallest


def test_numeric_features_get_one_column_holding_their_value():
    spec = Config.from_dict({
        "spec": {"features": [{"name": "item", "kind": "id"},
                              {"name": "price", "kind": "numeric"},
                              {"name": "age", "kind": "numeric", "buckets": 4}],
                 "tasks": [{"name": "click", "label": features.LABEL, "loss": "bce"}]}}).spec
    train = {"item": np.array([0, 2]), "price": np.array([0.5, -1.25], np.float32),
             "age": np.array([3, 1]), features.LABEL: np.zeros(2)}
    widths = linear_baseline.feature_widths(train, spec)
    assert widths == {"item": 3, "age": 4}
    assert linear_baseline.design_matrix(train, widths, spec).toarray().tolist() == [
        [1, 0, 0, 0, 0, 0, 1, 0.5], [0, 0, 1, 0, 1, 0, 0, -1.25]]
