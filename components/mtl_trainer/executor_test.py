"""Masked multi-task training: no task moves connections outside its own mask, θ0 start."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import small_config
from modules import inputs as inputs_lib
from modules import mtl, ticket_search


def _random_masks(network, seed, density=0.5):
    rng = np.random.default_rng(seed)
    return [rng.random(k.shape) < density for k in network.prunable_weights()]


def test_a_task_step_never_moves_connections_outside_its_mask(toy_inputs, tmp_path, monkeypatch):
    config = small_config(mtl={"schedule": "round_robin"})
    probe = inputs_lib.build_network(toy_inputs, config, mtl.TASKS)
    masks = {"ctr": _random_masks(probe, 1), "cvr": _random_masks(probe, 2)}
    prefix = str(tmp_path / "theta0")
    tf.train.Checkpoint(network=probe).write(prefix)
    built, history = [], []
    build = inputs_lib.build_network
    monkeypatch.setattr(mtl.inputs_lib, "build_network",
                        lambda *args: built.append(build(*args)) or built[-1])
    # Alternate single-task steps (CTR, CVR, CTR, ...) so every step can be checked on its own.
    monkeypatch.setattr(mtl, "schedule", lambda *_: (lambda i: [mtl.TASKS[i % 2]]))

    def on_step(step, losses):
        history.append((list(losses), [k.numpy().copy() for k in built[0].prunable_weights()]))

    mtl.train(toy_inputs, config, masks, prefix, on_step=on_step)
    history.insert(0, (None, [k.numpy().copy() for k in probe.prunable_weights()]))  # θ0
    assert len(history) > 10
    moved_private = 0
    for (_, before), (tasks, after) in zip(history, history[1:]):
        (task,) = tasks
        for mask, b, a in zip(masks[task], before, after):
            assert np.array_equal(b[~mask], a[~mask]), f"{task} step moved a weight outside its mask"
        other = "cvr" if task == "ctr" else "ctr"
        for own, theirs, b, a in zip(masks[task], masks[other], before, after):
            moved_private += int(np.sum((b != a) & own & ~theirs))
    assert moved_private > 0          # each task does train its private connections


def test_mtl_starts_from_theta0_and_uses_all_ones_masks_for_hard_sharing(toy_inputs, tmp_path):
    config = small_config(model={"seed": 8}, mtl={"masks": "ones"})
    source = inputs_lib.build_network(toy_inputs, small_config(model={"seed": 5}), mtl.TASKS)
    theta0 = ticket_search.snapshot(source)
    tf.train.Checkpoint(network=source).write(str(tmp_path / "theta0"))
    starts = []
    network, trainer, used = mtl.train(
        toy_inputs, config, {}, str(tmp_path / "theta0"),
        on_step=lambda step, _: starts.append(step))
    assert all(m.all() for task in mtl.TASKS for m in used[task])
    fresh = inputs_lib.build_network(toy_inputs, config, mtl.TASKS)
    tf.train.Checkpoint(network=fresh).read(str(tmp_path / "theta0"))
    assert all(np.array_equal(a, b) for a, b in zip(ticket_search.snapshot(fresh), theta0))
    assert starts and trainer.global_step == len(starts)


def test_missing_ticket_mask_is_refused(toy_inputs):
    config = small_config()
    network = inputs_lib.build_network(toy_inputs, config, mtl.TASKS)
    with pytest.raises(ValueError, match="missing task"):
        mtl.masks_for(config.mtl, network, {"ctr": _random_masks(network, 0)})


def test_proportional_schedule_is_seeded_and_follows_probabilities():
    config = small_config(mtl={"schedule": "proportional",
                               "task_probabilities": {"ctr": 0.8, "cvr": 0.2}})
    a = mtl.schedule(config.mtl, mtl.TASKS, seed=1)
    b = mtl.schedule(config.mtl, mtl.TASKS, seed=1)
    picks = [a(i)[0] for i in range(2000)]
    assert picks == [b(i)[0] for i in range(2000)]
    assert 0.75 < picks.count("ctr") / len(picks) < 0.85
