"""Masked multi-task training: no task moves connections outside its own mask, θ0 start,
metrics."""
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from components.ticket_search.executor_test import RecordingTrainer, same
from conftest import small_config
from modules import features, mtl
from modules import inputs as inputs_lib
from modules.training import MaskedTrainer, snapshot


def _random_masks(network, seed, density=0.5):
    rng = np.random.default_rng(seed)
    return [rng.random(k.shape) < density for k in network.prunable_weights()]


def test_a_task_step_never_moves_connections_outside_its_mask(toy_inputs, tmp_path, monkeypatch):
    config = small_config(mtl={"schedule": "round_robin"})
    probe = inputs_lib.build_network(toy_inputs, config, features.TASKS)
    masks = {"ctr": _random_masks(probe, 1), "cvr": _random_masks(probe, 2)}
    prefix = str(tmp_path / "theta0")
    tf.train.Checkpoint(network=probe).write(prefix)
    built, history = [], []
    build = inputs_lib.build_network
    monkeypatch.setattr(mtl.inputs_lib, "build_network",
                        lambda *args: built.append(build(*args)) or built[-1])
    # Alternate single-task steps (CTR, CVR, CTR, ...) so every step can be checked on its own.
    monkeypatch.setattr(mtl, "schedule", lambda *_: (lambda i: [features.TASKS[i % 2]]))

    def on_log(step, losses):
        history.append((list(losses), [k.numpy().copy() for k in built[0].prunable_weights()]))

    mtl.train(toy_inputs, config, masks, prefix, on_log=on_log)
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


def test_mtl_starts_from_theta0_and_uses_all_ones_masks_for_hard_sharing(toy_inputs, tmp_path,
                                                                         monkeypatch):
    """MTL's first step starts from the θ0 checkpoint's values bit for bit (not from the seed of
    its own config), with zeroed optimizers and each task's learning rate scaled by its weight."""
    config = small_config(model={"seed": 8},
                          mtl={"architecture": "shared_bottom",
                               "loss_weights": {"ctr": 1.0, "cvr": 0.5}})
    source = inputs_lib.build_network(toy_inputs, small_config(model={"seed": 5}), features.TASKS)
    theta0 = snapshot(source)
    tf.train.Checkpoint(network=source).write(str(tmp_path / "theta0"))
    RecordingTrainer.fits, steps = [], []
    monkeypatch.setattr(mtl, "MaskedTrainer", RecordingTrainer)
    network, trainer, used, fit = mtl.train(toy_inputs, config, {}, str(tmp_path / "theta0"),
                                            on_log=lambda step, _: steps.append(step))
    (start,) = RecordingTrainer.fits
    assert same(start["weights"], theta0)
    assert start["iterations"] == {"ctr": 0, "cvr": 0} and start["tasks"] == list(features.TASKS)
    assert all(m.all() for task in features.TASKS for m in used[task])
    assert all(m.all() for task in features.TASKS for m in start["masks"][task])
    assert steps and trainer.global_step == len(steps) == fit.checks[-1]["step"]
    rates = {t: float(o.learning_rate) for t, o in trainer.optimizers.items()}
    assert rates == pytest.approx({"ctr": config.model.learning_rate,
                                   "cvr": 0.5 * config.model.learning_rate})


def test_metrics_are_aucs_and_calibration_of_ctr_cvr_and_ctcvr(toy_inputs):
    config = small_config()
    network = inputs_lib.build_network(toy_inputs, config, features.TASKS)
    trainer = MaskedTrainer(network, toy_inputs.strategy, config)
    hard_sharing = small_config(mtl={"architecture": "shared_bottom"})
    for task, masks in mtl.masks_for(hard_sharing, network, {}).items():
        trainer.set_masks(task, masks)
    validation = toy_inputs.validation
    metrics = mtl.metrics(trainer, validation)
    # Independently: scores from `predict`, labels and rows from the examples (same file order).
    arrays = validation.read_arrays()
    ctr, cvr = (trainer.predict(validation, t) for t in features.TASKS)
    click, conversion = arrays[features.LABEL], arrays[features.CONVERSION]
    clicked = click == 1
    assert 0 < clicked.sum() < click.size and len(ctr) == len(cvr) == click.size
    exact = {"ctr": (click, ctr), "cvr": (conversion[clicked], cvr[clicked]),
             "ctcvr": (conversion, ctr * cvr)}
    rows = {name: r["rows"]
            for name, r in trainer.metrics(validation, config.spec.output_names()).items()}
    assert rows == {"ctr": click.size, "cvr": clicked.sum(), "ctcvr": click.size}
    for name, (labels, scores) in exact.items():    # streamed: within the bound it reports
        bound = metrics["auc_max_error"][name]
        assert bound < 1e-3
        assert abs(metrics["auc"][name] - roc_auc_score(labels, scores)) <= bound + 1e-9, name
        assert metrics["calibration"][name] == pytest.approx(scores.mean() / labels.mean()), name
    # The near misses (CTCVR scored by CTR alone, CVR on every row) are told apart.
    gaps = {"ctcvr": roc_auc_score(conversion, ctr * cvr) - roc_auc_score(conversion, ctr),
            "cvr": (roc_auc_score(conversion[clicked], cvr[clicked])
                    - roc_auc_score(conversion, cvr))}
    assert all(abs(gap) > 4 * metrics["auc_max_error"][name] for name, gap in gaps.items())


def test_missing_ticket_mask_is_refused(toy_inputs):
    config = small_config()
    network = inputs_lib.build_network(toy_inputs, config, features.TASKS)
    with pytest.raises(ValueError, match="missing task"):
        mtl.masks_for(config, network, {"ctr": _random_masks(network, 0)})


def test_proportional_schedule_is_seeded_and_follows_probabilities():
    config = small_config(mtl={"schedule": "proportional",
                               "task_probabilities": {"ctr": 0.8, "cvr": 0.2}})
    a = mtl.schedule(config.mtl, features.TASKS, seed=1)
    b = mtl.schedule(config.mtl, features.TASKS, seed=1)
    picks = [a(i)[0] for i in range(2000)]
    assert picks == [b(i)[0] for i in range(2000)]
    assert 0.75 < picks.count("ctr") / len(picks) < 0.85
