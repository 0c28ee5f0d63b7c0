"""mtl.product_losses (ESMM's CTCVR loss): the last task of a product steps on the product's
binary cross-entropy over the product's rows; the other factors do not move."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import small_config
from modules import inputs as inputs_lib
from modules import mtl, tasks
from modules.config import ConfigError
from modules.training import MaskedTrainer, snapshot

LEAN = {"dropout": 0.0, "embedding_l2": 0.0, "linear_term": False, "batch_size": 60}


def test_the_product_loss_is_the_cross_entropy_of_the_product_on_its_rows():
    spec = small_config().spec
    ctr = np.array([2.0, -1.0, 0.5, -3.0], np.float32)
    cvr = np.array([0.3, 1.5, -2.0, 4.0], np.float32)
    batch = {"label": tf.constant([1, 0, 1, 0]), "conversion": tf.constant([1.0, 0.0, 0.0, 0.0])}
    log_p = tf.math.log_sigmoid(ctr) + tf.math.log_sigmoid(cvr)
    loss = tasks.product_loss(spec, "ctcvr", batch, log_p).numpy()
    p = 1 / (1 + np.exp(-ctr)) / (1 + np.exp(-cvr))
    y = np.array([1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(loss, -(y * np.log(p) + (1 - y) * np.log(1 - p)), rtol=1e-5)
    # A certain prediction costs a finite amount.
    assert np.isfinite(tasks.product_loss(spec, "ctcvr", batch, tf.zeros(4)).numpy()).all()


def test_unknown_products_and_a_task_trained_through_two_products_are_refused():
    with pytest.raises(ConfigError, match="mtl.product_losses.*unknown product"):
        small_config(mtl={"product_losses": ["ctr_cvr"]})
    spec = {"products": [{"name": "ctcvr", "tasks": ["ctr", "cvr"]},
                         {"name": "again", "tasks": ["ctr", "cvr"]}]}
    with pytest.raises(ConfigError, match="one task through two products"):
        small_config(spec=spec, mtl={"product_losses": ["ctcvr", "again"]})


@pytest.mark.parametrize("architecture", ["lt4rec", "mmoe"])
def test_a_cvr_step_on_unclicked_rows_learns_only_through_the_product(toy_inputs, architecture):
    """CVR's own rows are the clicked ones: on a batch without a click its plain step changes
    nothing; through CTCVR it learns (every row), and CTR's own parameters never move."""
    batch = dict(next(iter(toy_inputs.train.batches(60, seed=1))))
    batch["label"] = tf.zeros_like(batch["label"])
    batch["conversion"] = tf.zeros_like(batch["conversion"])
    moved = {}
    for product_losses in ([], ["ctcvr"]):
        config = small_config(model=LEAN, mtl={"architecture": architecture,
                                               "product_losses": product_losses})
        network = inputs_lib.build_network(toy_inputs, config, ("ctr", "cvr"))
        trainer = MaskedTrainer(network, toy_inputs.strategy, config,
                                product_losses=config.mtl.product_losses)
        for task, masks in mtl.masks_for(config, network, _tickets(network)).items():
            trainer.set_masks(task, masks)
        trainer.reset_optimizers()
        index = {id(v): i for i, v in enumerate(network.variables)}
        before = snapshot(network)
        trainer.step(["cvr"], batch)
        changed = {i for i, (old, new) in enumerate(zip(before, snapshot(network)))
                   if not np.array_equal(old, new)}
        assert not changed & {index[id(v)] for v in network.own_variables("ctr")}
        moved[bool(product_losses)] = changed & {index[id(v)]
                                                 for v in network.own_variables("cvr")}
    assert not moved[False] and moved[True]


def _tickets(network):
    """Random half-density tickets (read by lt4rec only)."""
    rng = np.random.default_rng(0)
    return {task: [rng.random(k.shape) < 0.5 for k in network.prunable_weights()]
            for task in ("ctr", "cvr")}
