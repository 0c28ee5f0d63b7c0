"""Eval labels reach neither the ticket choice nor early stopping: flip them, nothing else moves.

Two whole-pipeline runs (`lt4rec run` with the tiny CI config) on two roots whose input data
(given split mode: `train/` and `eval/`, validation carved out of train by hash) have identical
train files and eval files that differ only in their labels: every `label` is flipped 0 <-> 1.
Everything the pipeline chooses (the ticket rounds, the masks, when training stops) is chosen on
validation, so it must come out identical; only the eval numbers may (and must) differ.

cvrlabel in the flipped eval file: the schema only asks for one float in [0, 1] (no NaN/inf) and
the StrictExampleValidator only for two classes of `label` per split, so a bare flip would pass
validation. But a non-click's cvrlabel is 0.0 in the synthetic logs (and by `modules.features`'
definition), so after a bare flip every click of eval would have cvrlabel 0.0, no conversion, and
an undefined CVR AUC (TicketSearch and MTLTrainer raise MetricUndefinedError on it). So the rows
that become non-clicks get cvrlabel 0.0 and the rows that become clicks get the former clicks'
cvrlabels, in file order (cycled): eval keeps its features, and its click-completion values.
"""
import copy
import itertools
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_pipeline_config
from modules import data as data_lib
from modules import features
from modules import masks as masks_lib
from pipeline import local_runner, summary, synthetic_data
from reliability.helpers import read_examples, write_examples

pytestmark = pytest.mark.e2e

ROWS, SEED = 800, 11
LABELS = (features.LABEL, features.CVR_LABEL)
TASKS = ("ctr", "cvr")


def _label(example):
    return example.features.feature[features.LABEL].int64_list.value[0]


def _cvrlabel(example):
    return example.features.feature[features.CVR_LABEL].float_list.value[0]


def flipped_labels(examples):
    """Copies with `label` flipped; cvrlabel 0.0 on new non-clicks, old clicks' on new clicks."""
    completions = itertools.cycle([_cvrlabel(e) for e in examples if _label(e) == 1])
    flipped = []
    for example in examples:
        example = copy.deepcopy(example)
        clicked = 1 - _label(example)
        feature = example.features.feature
        feature[features.LABEL].int64_list.value[:] = [clicked]
        feature[features.CVR_LABEL].float_list.value[:] = [next(completions) if clicked else 0.0]
        flipped.append(example)
    return flipped


def _without_labels(example):
    example = copy.deepcopy(example)
    for name in LABELS:
        del example.features.feature[name]
    return example.SerializeToString(deterministic=True)


def _run(data_dir, root):
    config = tiny_pipeline_config()
    outputs = local_runner.run(str(data_dir), str(root), config)
    layout = local_runner.RunLayout(str(root))
    result = summary.build(outputs, layout, config)

    def report(node, key, name):
        with open(os.path.join(outputs[node][key][0].uri, name), encoding="utf-8") as f:
            return json.load(f)
    return {"outputs": outputs, "summary": result,
            "tickets": report("TicketSearch", "masks", "ticket_report.json"),
            "training": report("MTLTrainer", "model_run", "training_report.json"),
            "masks": masks_lib.load(outputs["TicketSearch"]["masks"][0].uri)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("honest_selection")
    original = base / "original" / "data"
    synthetic_data.write_dataset(str(original), rows=ROWS, seed=SEED, splits=True)
    flipped = base / "flipped" / "data"
    shutil.copytree(original / "train", flipped / "train")
    write_examples(str(flipped / "eval" / "data-00000-of-00001.tfrecord.gz"),
                   flipped_labels(read_examples(original / "eval")))
    return {"original": _run(original, base / "original"),
            "flipped": _run(flipped, base / "flipped"), "data": (original, flipped)}


def _split_records(run, split):
    uri = run["outputs"]["ImportExampleGen"]["examples"][0].uri
    return [r.numpy() for r in tf.data.TFRecordDataset(
        data_lib.split_files(uri, split), compression_type="GZIP")]


def _canonical(records):
    """The records as a sorted list of deterministic serializations."""
    return sorted(tf.train.Example.FromString(r).SerializeToString(deterministic=True)
                  for r in records)


def test_the_data_differ_only_in_the_eval_labels(runs):
    original, flipped = runs["data"]
    assert read_examples(original / "train") == read_examples(flipped / "train")
    before, after = read_examples(original / "eval"), read_examples(flipped / "eval")
    assert [_without_labels(e) for e in before] == [_without_labels(e) for e in after]
    assert [1 - _label(e) for e in before] == [_label(e) for e in after]
    assert all(_cvrlabel(e) == 0.0 for e in after if _label(e) == 0)
    # Both runs split the same: the same train and validation rows (carved out by hash). Neither
    # the order Beam writes them in nor the order of a record's feature map is part of the claim.
    for split in ("train", "validation"):
        records = _canonical(_split_records(runs["original"], split))
        assert records and records == _canonical(_split_records(runs["flipped"], split)), split
    assert _split_records(runs["original"], "eval") != _split_records(runs["flipped"], "eval")


def test_ticket_search_chose_the_same_masks(runs):
    first, second = runs["original"]["masks"], runs["flipped"]["masks"]
    assert set(first) == set(second) == set(TASKS)
    for task in TASKS:
        assert len(first[task]) == len(second[task])
        for a, b in zip(first[task], second[task]):
            np.testing.assert_array_equal(a, b)


def _without_eval(report):
    """The ticket report without its eval AUCs (everything else is chosen on validation) and
    its rounds' wall seconds."""
    report = copy.deepcopy(report)
    for task in report["tasks"].values():
        del task["chosen_eval_metric"], task["dense_eval_metric"]
        for round_ in task["rounds"]:
            del round_["eval_auc"], round_["seconds"]
    return report


def _untimed(fit):
    """An early-stopping record without its wall seconds."""
    return {key: value for key, value in fit.items() if key != "seconds"}


def test_ticket_search_chose_the_same_rounds_on_the_same_validation_metrics(runs):
    first, second = runs["original"]["tickets"], runs["flipped"]["tickets"]
    for task in TASKS:
        a, b = first["tasks"][task], second["tasks"][task]
        assert a["selected_on"] == "validation"
        assert a["chosen_round"] == b["chosen_round"]
        assert a["chosen_metric"] == b["chosen_metric"]
        assert a["dense_metric"] == b["dense_metric"]
        assert ([r["validation_auc"] for r in a["rounds"]]
                == [r["validation_auc"] for r in b["rounds"]])
        assert ([r["epochs_trained"] for r in a["rounds"]]
                == [r["epochs_trained"] for r in b["rounds"]])
    assert _without_eval(first) == _without_eval(second)


def test_mtl_trained_the_same_and_stopped_at_the_same_check(runs):
    first, second = runs["original"]["training"], runs["flipped"]["training"]
    assert first["validation_auc"] == second["validation_auc"]
    assert first["validation_calibration"] == second["validation_calibration"]
    assert _untimed(first["early_stopping"]) == _untimed(second["early_stopping"])
    assert first["epochs_trained"] == second["epochs_trained"]
    assert first["steps"] == second["steps"]
    for task in TASKS:
        assert (runs["original"]["summary"][task]["validation_auc"]
                == runs["flipped"]["summary"][task]["validation_auc"])


def test_the_flip_reached_eval(runs):
    """The same model scores the same eval rows: flipped click labels give CTR AUC 1 - AUC."""
    first, second = runs["original"]["training"], runs["flipped"]["training"]
    for task in ("ctr", "cvr", "ctcvr"):
        assert first["eval_auc"][task] != second["eval_auc"][task], task
    assert second["eval_auc"]["ctr"] == pytest.approx(1.0 - first["eval_auc"]["ctr"], abs=1e-9)
    assert second["pctr_reference_auc"] == pytest.approx(
        1.0 - first["pctr_reference_auc"], abs=1e-9)
    for task in TASKS:
        a = runs["original"]["tickets"]["tasks"][task]
        b = runs["flipped"]["tickets"]["tasks"][task]
        assert a["dense_eval_metric"] != b["dense_eval_metric"], task
        assert a["chosen_eval_metric"] != b["chosen_eval_metric"], task
    assert (runs["flipped"]["summary"]["ctr"]["mtl_auc"]
            == pytest.approx(1.0 - runs["original"]["summary"]["ctr"]["mtl_auc"], abs=1e-9))
