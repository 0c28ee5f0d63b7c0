"""No silent negative transfer: a task MTL serves worse than its own ticket did alone is flagged,
and (by default) served from the ticket's weights."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import label_arrays, small_config
from modules import features
from modules import inputs as inputs_lib
from modules import mtl
from modules.training import MaskedTrainer


def _masks(network, seed):
    rng = np.random.default_rng(seed)
    return [rng.random(k.shape) < 0.5 for k in network.prunable_weights()]


def _ticket(inputs, config, directory, task, masks, train):
    """A ticket checkpoint for `task` through `masks`, trained alone (or left at θ0)."""
    network = inputs_lib.build_network(inputs, config, config.ticket_tasks())
    trainer = MaskedTrainer(network, inputs.strategy, config)
    trainer.set_masks(task, masks)
    trainer.reset_optimizers()
    if train:
        trainer.fit(inputs.train, inputs.validation, [task], lambda _: [task],
                    config.ticket.stopping, seed=0)
    prefix = str(directory / task / "ckpt")
    tf.train.Checkpoint(network=network).write(prefix)
    return prefix, trainer


@pytest.fixture(scope="module")
def toy_inputs(module_toy_inputs):
    """conftest's toy inputs, once for the module (the tickets are the cost)."""
    return module_toy_inputs


@pytest.fixture(scope="module")
def setup(toy_inputs, tmp_path_factory):
    """θ0, CTR/CVR tickets, and a ticket for CTR trained alone (the CVR one left at θ0)."""
    tmp_path = tmp_path_factory.mktemp("tickets")
    config = small_config(ticket={"stopping": {"max_epochs": 3, "patience": 2}})
    probe = inputs_lib.build_network(toy_inputs, config, features.TASKS)
    theta0 = str(tmp_path / "theta0")
    tf.train.Checkpoint(network=probe).write(theta0)
    masks = {"ctr": _masks(probe, 1), "cvr": _masks(probe, 2)}
    tickets = {task: _ticket(toy_inputs, config, tmp_path, task, masks[task], task == "ctr")
               for task in features.TASKS}
    return config, theta0, masks, tickets, tmp_path


@pytest.mark.parametrize("policy", ["serve_ticket", "report"])
def test_a_task_mtl_left_behind_is_flagged_and_served_from_its_ticket(toy_inputs, setup, policy):
    """MTL steps only CVR here, so its CTR stays at θ0 and loses to CTR's trained ticket."""
    _, theta0, masks, tickets, _ = setup
    config = small_config(mtl={"negative_transfer": policy})
    _, trainer, _, _ = mtl.train(toy_inputs, config, masks, theta0, train_tasks=["cvr"])
    before = {t: trainer.predict(toy_inputs.validation, t) for t in features.TASKS}
    records = mtl.guard_negative_transfer(trainer, toy_inputs, config, masks,
                                          {t: prefix for t, (prefix, _) in tickets.items()})
    ctr, cvr = records["ctr"], records["cvr"]
    ticket_ctr = tickets["ctr"][1]
    assert ctr["mtl_lost"] and ctr["ticket_validation_auc"] > ctr["mtl_validation_auc"] + 0.1
    assert ctr["ticket_validation_auc"] == ticket_ctr.evaluate(toy_inputs.validation, ["ctr"])["ctr"]
    assert ctr["ticket_eval_auc"] == ticket_ctr.evaluate(toy_inputs.evaluation, ["ctr"])["ctr"]
    assert not cvr["mtl_lost"] and cvr["served_by"] == "mtl"     # its ticket stayed at θ0
    np.testing.assert_array_equal(trainer.predict(toy_inputs.validation, "cvr"), before["cvr"])
    served_ctr = trainer.predict(toy_inputs.validation, "ctr")
    if policy == "serve_ticket":
        assert ctr["served_by"] == "ticket"
        np.testing.assert_array_equal(served_ctr,
                                      ticket_ctr.predict(toy_inputs.validation, "ctr"))
        assert trainer.evaluate(toy_inputs.validation, ["ctr"])["ctr"] == \
            ctr["ticket_validation_auc"]
        ctcvr = trainer.metrics(toy_inputs.validation, ["ctcvr"])["ctcvr"]
        assert ctcvr["calibration"] is not None           # ctcvr = served ctr x MTL cvr
    else:
        assert ctr["served_by"] == "mtl"
        np.testing.assert_array_equal(served_ctr, before["ctr"])


def test_no_flag_when_mtl_is_at_least_as_good_as_the_ticket(toy_inputs, setup):
    config, theta0, masks, _, directory = setup
    _, trainer, _, _ = mtl.train(toy_inputs, config, masks, theta0)
    untrained = {t: _ticket(toy_inputs, config, directory / "untrained", t, masks[t], False)[0]
                 for t in features.TASKS}
    records = mtl.guard_negative_transfer(trainer, toy_inputs, config, masks, untrained)
    assert all(not r["mtl_lost"] and r["served_by"] == "mtl" for r in records.values())
    assert not trainer.served


def test_an_improvement_within_min_delta_is_no_negative_transfer(toy_inputs, setup):
    """The guard uses the early-stopping rule: losing by less than min_delta is not losing."""
    _, theta0, masks, tickets, _ = setup
    config = small_config(mtl={"stopping": {"max_epochs": 2, "patience": 1, "min_delta": 1.0}})
    _, trainer, _, _ = mtl.train(toy_inputs, config, masks, theta0, train_tasks=["cvr"])
    records = mtl.guard_negative_transfer(trainer, toy_inputs, config, masks,
                                          {t: prefix for t, (prefix, _) in tickets.items()})
    assert not records["ctr"]["mtl_lost"] and records["ctr"]["served_by"] == "mtl"


@pytest.mark.e2e
def test_a_task_served_from_its_ticket_is_exported_and_serves_like_the_trainer(tiny_run,
                                                                              tmp_path):
    """Export with CTR served from its ticket (MTL left at θ0): the SavedModel, loaded as TF
    Serving loads it, scores raw eval examples with the ticket's CTR and MTL's CVR."""
    import tensorflow_transform as tft
    from modules.ticket_search import start_prefix, ticket_prefix
    from modules import data, export
    from modules import masks as masks_lib
    from modules import tasks as task_lib
    from pipeline import serving
    outputs, config = tiny_run["outputs"], tiny_run["config"]
    transform_uri = outputs["Transform"]["transform_graph"][0].uri
    masks_uri = outputs["TicketSearch"]["masks"][0].uri
    inputs = inputs_lib.load(outputs["Transform"]["transformed_examples"][0].uri, transform_uri,
                             config)
    tickets = masks_lib.load(masks_uri)
    network = inputs_lib.build_network(inputs, config, features.TASKS)
    tf.train.Checkpoint(network=network).read(start_prefix(masks_uri)).expect_partial()
    trainer = MaskedTrainer(network, inputs.strategy, config)
    for task in features.TASKS:
        trainer.set_masks(task, tickets[task])
    at_theta0 = trainer.evaluate(inputs.evaluation, ["ctr"])["ctr"]
    ticket = inputs_lib.build_network(inputs, config, config.ticket_tasks())
    tf.train.Checkpoint(network=ticket).read(
        ticket_prefix(masks_uri, "ctr")).assert_existing_objects_matched()
    trainer.serve_from("ctr", ticket, tickets["ctr"])
    expected = trainer.evaluate(inputs.evaluation, features.TASKS)
    assert abs(expected["ctr"] - at_theta0) > 5e-3
    path = str(tmp_path / "model")
    export.export(network, tickets, tft.TFTransformOutput(transform_uri), path, config.spec,
                  trainer.served)
    loaded = tf.saved_model.load(path)
    for task, source in (("ctr", ticket), ("cvr", network)):
        for mask, kernel, exported in zip(tickets[task], source.prunable_weights(),
                                          loaded.task_kernels[task]):
            np.testing.assert_array_equal(exported.numpy(), kernel.numpy() * mask)
    raw = [r.numpy() for r in tf.data.TFRecordDataset(data.split_files(
        outputs["ImportExampleGen"]["examples"][0].uri, "eval"), compression_type="GZIP")]
    scores = serving.ServingSession(path).score(raw)
    arrays = label_arrays(config.spec, raw)
    for task in features.TASKS:
        assert task_lib.auc(config.spec, task, arrays, scores[task]) == pytest.approx(
            expected[task], abs=1e-3)
    # The model-size benchmark counts the ticket network the export carries for CTR.
    from benchmarks import model_size
    params, _ = model_size.parameters(path, config.model.embedding_dim)
    assert sum(k["stored"] for kind, k in params["by_kind"].items()
               if kind.startswith("served_")) == sum(int(np.prod(v.shape))
                                                     for v in ticket.variables)
