"""Three tasks and a product end to end in one process, on the toy spec of `test_spec`: Transform,
a ticket per task, masked MTL through three masks, export, and the SavedModel loaded the way TF
Serving loads it serving every task and the product."""
import copy
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

from modules import data, export, mtl, preprocessing, pruning, ticket_search
from modules import inputs as inputs_lib
from modules import masks as masks_lib
from modules.config import Config
from pipeline import serving
from test_spec import TOY, raw_rows, raw_spec

pytestmark = pytest.mark.long      # about a minute and a half: Transform, search, MTL, export

ROWS = 600
SPLITS = {"train": slice(0, 360), "validation": slice(360, 480), "eval": slice(480, ROWS)}
TASKS = ["click", "finish", "long"]


def _config():
    values = copy.deepcopy(TOY)
    values["model"]["hidden_units"] = [8, 4]
    values["ticket"] = {"rounds": 2, "final_density": 0.25, "stopping": {"max_epochs": 1}}
    # proportional: one task drawn per batch, so each step below is one task's
    values["mtl"] = {"schedule": "proportional", "stopping": {"max_epochs": 1}}
    return Config.from_dict(values)


def _serialized(row):
    """A raw toy row as a serialized tf.Example."""
    example = tf.train.Example()
    for name, spec in raw_spec().items():
        feature = example.features.feature[name]
        kind = {tf.string: "bytes_list", tf.int64: "int64_list"}.get(spec.dtype, "float_list")
        getattr(feature, kind).value.extend(row[name])
    return example.SerializeToString()


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """Transform the toy rows, search a ticket per task, train masked MTL from the tickets."""
    tmp = str(tmp_path_factory.mktemp("n_tasks"))
    config, raw = _config(), raw_rows(ROWS)
    custom = {"config": config.to_json(("spec", "data", "vocab"))}
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(raw_spec())
    with tft_beam.Context(temp_dir=os.path.join(tmp, "tft")):
        (out, _), transform_fn = ((raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda batch: preprocessing.preprocessing_fn(batch, custom)))
        _ = transform_fn | tft_beam.WriteTransformFn(os.path.join(tmp, "transform"))
    # the raw metadata serving parses examples with (TFX's Transform writes it too)
    metadata_io.write_metadata(metadata, os.path.join(tmp, "transform", "metadata"))
    tft_output = tft.TFTransformOutput(os.path.join(tmp, "transform"))
    splits = {}
    for name, rows in SPLITS.items():
        arrays = {key: np.stack([np.asarray(t[key]) for t in out[rows]]) for key in out[0]}
        path = data.write_examples(arrays, os.path.join(tmp, f"{name}.gz"))
        splits[name] = data.Examples([path], data.feature_spec_of(arrays), config.input)
    inputs = inputs_lib.TrainingInputs(
        train=splits["train"], validation=splits["validation"], evaluation=splits["eval"],
        vocab_sizes=inputs_lib.vocab_sizes(tft_output, config),
        strategy=tf.distribute.get_strategy())
    masks_uri = os.path.join(tmp, "masks")
    report = ticket_search.run_search(inputs, config, masks_uri)
    tickets = masks_lib.load(masks_uri)
    network, trainer, task_masks, _ = mtl.train(inputs, config, tickets,
                                                ticket_search.start_prefix(masks_uri))
    return {"config": config, "raw": raw, "tft_output": tft_output, "inputs": inputs,
            "report": report, "tickets": tickets, "network": network, "trainer": trainer,
            "masks": task_masks, "tmp": tmp}


def test_every_task_gets_its_ticket_and_the_overlap_is_n_by_n(toy_run):
    report, tickets, config = toy_run["report"], toy_run["tickets"], toy_run["config"]
    assert sorted(report["tasks"]) == sorted(tickets) == sorted(TASKS)
    total = report["prunable_total"]
    for task in TASKS:
        rounds = report["tasks"][task]["rounds"]
        kept = [r["kept"] for r in rounds]
        assert kept == [total, round(total * config.ticket.keep_per_round),
                        round(total * config.ticket.final_density)]
        assert pruning.density(tickets[task]) == report["tasks"][task]["chosen_density"]
        assert report["tasks"][task]["metric_name"] == (
            "auc" if task == "click" else f"auc (rows: {config.spec.task(task).rows})")
    overlap = report["overlap"]
    assert overlap["tasks"] == TASKS
    expected = pruning.overlap({t: tickets[t] for t in TASKS})
    assert overlap["pairwise"] == expected["pairwise"]
    jaccard = np.array(overlap["pairwise"]["jaccard"])
    assert jaccard.shape == (3, 3) and np.allclose(np.diag(jaccard), 1.0)
    assert np.allclose(jaccard, jaccard.T)
    every = np.logical_and.reduce([np.concatenate([m.ravel() for m in tickets[t]])
                                   for t in TASKS])
    assert overlap["shared"] == int(every.sum())


def test_no_task_step_moves_a_connection_outside_its_mask(toy_run):
    """After MTL (every task's Adam holds momentum), one more step of each of the three tasks:
    nothing outside that task's mask moves, and some of its own connections do."""
    trainer, network, masks = toy_run["trainer"], toy_run["network"], toy_run["masks"]
    batch = next(iter(toy_run["inputs"].train.batches(trainer.model_config.batch_size, seed=5)))
    for task in TASKS:
        before = [k.numpy().copy() for k in network.prunable_weights()]
        trainer.step([task], batch)
        after = [k.numpy() for k in network.prunable_weights()]
        for mask, b, a in zip(masks[task], before, after):
            assert np.array_equal(b[~mask], a[~mask]), f"a {task} step moved a masked weight"
        assert any(not np.array_equal(b[m], a[m]) for m, b, a in zip(masks[task], before, after))


def test_the_savedmodel_serves_every_task_and_the_product(toy_run):
    config, trainer, network = toy_run["config"], toy_run["trainer"], toy_run["network"]
    path = export.export(network, toy_run["masks"], toy_run["tft_output"],
                         os.path.join(toy_run["tmp"], "model"), config.spec, trainer.served)
    loaded = tf.saved_model.load(path)
    for task in TASKS:
        for mask, kernel, exported in zip(toy_run["masks"][task], network.prunable_weights(),
                                          loaded.task_kernels[task]):
            np.testing.assert_array_equal(exported.numpy(), kernel.numpy() * mask)
    raw = [_serialized(row) for row in toy_run["raw"][SPLITS["eval"]]]
    scores = serving.ServingSession(path).score(raw)
    assert sorted(scores) == sorted(TASKS + ["click_finish"])
    for task in TASKS:
        np.testing.assert_allclose(scores[task], trainer.predict(toy_run["inputs"].evaluation,
                                                                 task), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores["click_finish"], scores["click"] * scores["finish"],
                               rtol=1e-6)
