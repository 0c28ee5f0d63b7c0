"""MaskedTrainer: early stopping on validation, regularisation, per-task loss weights."""
import dataclasses
import time

import numpy as np
import pytest
import tensorflow as tf

from components.ticket_search.executor_test import same
from conftest import small_config
from modules import features, pruning
from modules.config import Config
from modules import inputs as inputs_lib
from modules import tasks as task_lib
from modules.training import MaskedTrainer, PhaseClock, improved, restore, snapshot
from modules.config import EarlyStoppingConfig

FIELDS = tuple(Config().spec.fields())

TASKS = ("ctr", "cvr")
# 600 train rows / 60: ten full batches per pass (one trace per step function); the model
# extras are off unless a test is about them (each one makes the step slower to trace).
LEAN = {"batch_size": 60, "dropout": 0.0, "embedding_l2": 0.0, "linear_term": False}


class ScriptedTrainer(MaskedTrainer):
    """A MaskedTrainer whose validation AUCs come from `script` ({task: [AUC of each check]};
    None: the real ones) and that records the weights at every check."""

    def __init__(self, *args, script=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.script, self.at_checks = script, []

    def auc_metrics(self, examples, tasks):
        self.at_checks.append(snapshot(self.network))
        if self.script is None:
            return super().auc_metrics(examples, tasks)
        return {task: {"auc": self.script[task][len(self.at_checks) - 1], "auc_max_error": 0.0}
                for task in tasks}


def make_trainer(inputs, tasks=("ctr",), script=None, loss_weights=None, **model):
    """A ScriptedTrainer on a new network for `tasks`: all-ones masks, zeroed optimizers."""
    config = small_config(model={**LEAN, **model})
    network = inputs_lib.build_network(inputs, config, tasks)
    trainer = ScriptedTrainer(network, inputs.strategy, config, loss_weights, script=script)
    for task in tasks:
        trainer.set_masks(task, pruning.ones_like([k.numpy() for k in network.prunable_weights()]))
    trainer.reset_optimizers()
    return trainer


def fit(trainer, inputs, tasks=("ctr",), on_log=None, **stopping):
    """trainer.fit on the toy splits, every task on every batch; `stopping` overrides."""
    config = EarlyStoppingConfig(**{"max_epochs": 2, "patience": 1, **stopping})
    return trainer.fit(inputs.train, inputs.validation, list(tasks), lambda _: list(tasks), config,
                       seed=0, on_log=on_log)


def own_variables(network, task):
    """The variables only `task` trains: its head and its linear term."""
    return network.heads[task].trainable_weights + [
        t.embeddings for t in network.linear.get(task, {}).values()]


def own_values(network, task):
    """The values of `own_variables`."""
    return [v.numpy().copy() for v in own_variables(network, task)]


def padded(values, length=10):
    """A script column; zeros after `values`, so reading past the expected stop fails loudly."""
    return list(values) + [0.0] * (length - len(values))


@pytest.mark.parametrize("every_steps, max_epochs, check_steps", [
    (0, 2, [10, 20]), (3, 1, [3, 6, 9, 10]), (4, 2, [4, 8, 12, 16, 20])])
def test_validation_is_checked_every_n_steps_and_at_the_end(toy_inputs, every_steps, max_epochs,
                                                            check_steps):
    trainer = make_trainer(toy_inputs, script={"ctr": [0.5 + 0.01 * i for i in range(10)]})
    report = fit(trainer, toy_inputs, every_steps=every_steps, max_epochs=max_epochs)
    assert [c["step"] for c in report.checks] == check_steps
    assert [c["epoch"] for c in report.checks] == [s / 10 for s in check_steps]
    assert trainer.global_step == 10 * max_epochs
    assert report.epochs_trained == {"ctr": max_epochs} and report.stopped == {"ctr": False}
    assert report.best_check == len(check_steps) - 1


def test_a_fit_says_where_its_wall_time_went(toy_inputs):
    trainer = make_trainer(toy_inputs)
    start = time.perf_counter()
    report = fit(trainer, toy_inputs, every_steps=0, max_epochs=2)
    wall = time.perf_counter() - start
    assert set(report.seconds) == {"input_wait", "first_steps", "steps", "checks"}
    assert all(seconds > 0 for seconds in report.seconds.values())
    assert sum(report.seconds.values()) <= wall


def test_train_steps_takes_exactly_its_steps_and_says_where_their_time_went(toy_inputs):
    trainer = make_trainer(toy_inputs)
    seconds = trainer.train_steps(toy_inputs.train, lambda _: ["ctr"], 7, seed=1)
    assert trainer.global_step == 7
    assert set(seconds) == {"input_wait", "first_steps", "steps", "checks"}
    assert seconds["checks"] == 0 and all(seconds[p] > 0 for p in ("input_wait", "first_steps",
                                                                    "steps"))
    again = trainer.train_steps(toy_inputs.train, lambda _: ["ctr"], 3, seed=1)
    assert trainer.global_step == 10 and again["first_steps"] > 0      # a new clock each call


def test_a_step_is_a_first_step_while_one_of_its_tasks_had_not_stepped():
    clock = PhaseClock()
    assert [clock.step_phase(t) for t in (["ctr"], ["ctr"], ["ctr", "cvr"], ["ctr", "cvr"],
                                          ["cvr"])] \
        == ["first_steps", "steps", "first_steps", "steps", "steps"]
    assert clock.timed("checks", sum, [1, 2]) == 3 and clock.seconds["checks"] > 0


@pytest.mark.parametrize("aucs, patience, min_delta, checks, best", [
    ([0.6, 0.8, 0.7, 0.75], 2, 0.0, 4, 1),          # two checks in a row below the best
    ([0.6, 0.5, 0.7, 0.4, 0.3], 2, 0.0, 5, 2),      # an improvement resets the count
    ([0.6, 0.64, 0.62], 2, 0.05, 3, 0),             # +0.04 is no improvement: not kept either
], ids=["patience", "reset", "min_delta"])
def test_a_task_stops_after_patience_checks_without_improvement(toy_inputs, aucs, patience,
                                                                min_delta, checks, best):
    trainer = make_trainer(toy_inputs, script={"ctr": padded(aucs)})
    report = fit(trainer, toy_inputs, every_steps=2, patience=patience, min_delta=min_delta)
    assert len(report.checks) == checks and trainer.global_step == 2 * checks
    assert report.stopped == {"ctr": True}
    assert report.epochs_trained["ctr"] == pytest.approx(0.2 * checks)
    assert report.best_check == best and report.validation_auc == {"ctr": aucs[best]}
    assert same(snapshot(trainer.network), trainer.at_checks[best])      # best weights restored
    assert not same(trainer.at_checks[best], trainer.at_checks[-1])


def test_nothing_improves_by_min_delta_one_so_training_stops_after_patience_plus_one_checks(
        toy_inputs):
    trainer = make_trainer(toy_inputs)
    report = fit(trainer, toy_inputs, max_epochs=10, patience=2, min_delta=1.0)
    aucs = [c["validation_auc"]["ctr"] for c in report.checks]
    assert [c["step"] for c in report.checks] == [10, 20, 30]
    assert report.stopped == {"ctr": True} and report.epochs_trained == {"ctr": 3.0}
    assert report.best_check == 0              # the same rule keeps: only the first check counts
    assert report.validation_auc == {"ctr": aucs[0]}
    assert same(snapshot(trainer.network), trainer.at_checks[0])


def test_a_stopped_task_no_longer_steps_while_the_other_continues(toy_inputs):
    """CVR runs out of patience at check 4 (step 8); CTR trains on; the weights kept are those of
    the check with the best mean AUC (check 2)."""
    script = {"ctr": [0.5, 0.6, 0.9, 0.8, 0.8, 0.9], "cvr": [0.7, 0.6, 0.6, 0.6, 0.6, 0.6]}
    trainer = make_trainer(toy_inputs, TASKS, script, linear_term=True)
    network, steps = trainer.network, []
    report = fit(trainer, toy_inputs, TASKS, every_steps=2, max_epochs=1, patience=3,
                 on_log=lambda step, losses: steps.append(
                     (sorted(losses), {t: own_values(network, t) for t in TASKS})))
    assert [tasks for tasks, _ in steps] == [["ctr", "cvr"]] * 8 + [["ctr"]] * 2
    assert report.stopped == {"ctr": False, "cvr": True}
    assert report.epochs_trained == {"ctr": 1.0, "cvr": 0.8}
    own = [values for _, values in steps]
    assert not same(own[6]["cvr"], own[7]["cvr"])                  # moving up to its last step
    assert same(own[7]["cvr"], own[8]["cvr"]) and same(own[7]["cvr"], own[9]["cvr"])
    assert not same(own[7]["ctr"], own[8]["ctr"]) and not same(own[8]["ctr"], own[9]["ctr"])
    assert report.best_check == 2 and report.validation_auc == {"ctr": 0.9, "cvr": 0.6}
    assert same(snapshot(network), trainer.at_checks[2])


@pytest.mark.parametrize("new, best, errors, min_delta, better", [
    (0.70, 0.69, (0.0, 0.0), 0.0, True), (0.70, 0.70, (0.0, 0.0), 0.0, False),
    (0.70, 0.69, (0.0, 0.0), 0.02, False),            # below min_delta
    (0.70, 0.69, (0.006, 0.006), 0.0, False),         # within the AUCs' error bounds
    (0.70, 0.69, (0.004, 0.004), 0.0, True), (0.5, -np.inf, (0.01, 0.0), 0.1, True)])
def test_one_rule_decides_what_an_improvement_is(new, best, errors, min_delta, better):
    assert improved(new, best, errors[0], errors[1], min_delta) is better


def _overlapping_tickets(network, seed=0):
    """Two real, partly overlapping tickets (half density each) from random magnitudes."""
    rng = np.random.default_rng(seed)
    kernels = [k.numpy() for k in network.prunable_weights()]
    total = sum(k.size for k in kernels)
    return {task: pruning.prune_global([rng.normal(size=k.shape) for k in kernels],
                                       pruning.ones_like(kernels), total // 2) for task in TASKS}


def _value(values, network, variable):
    """`variable`'s entry in a `snapshot` of `network`."""
    return next(v for v, var in zip(values, network.variables) if var is variable)


@pytest.mark.parametrize("composite, kept", [((0.8, 0.7), "per_task"), ((0.8, 0.55), "best_check")])
def test_each_task_keeps_its_own_parameters_from_its_best_check_when_validation_prefers_it(
        toy_inputs, composite, kept):
    """CVR peaks at check 0, CTR and the mean at check 2. With real overlapping tickets: CVR's
    head, linear term and CVR-only connections come from check 0 and everything shared from
    check 2 when that combination's mean validation AUC is better; otherwise all from check 2."""
    script = {"ctr": [0.6, 0.7, 0.8, 0.8, 0.8, composite[0]],
              "cvr": [0.7, 0.65, 0.6, 0.6, 0.6, composite[1]]}
    trainer = make_trainer(toy_inputs, TASKS, script, linear_term=True)
    network = trainer.network
    tickets = _overlapping_tickets(network)
    for task in TASKS:
        trainer.set_masks(task, tickets[task])
    theta0 = snapshot(network)
    report = fit(trainer, toy_inputs, TASKS, every_steps=2, max_epochs=1, patience=2)
    assert report.task_best_check == {"ctr": 2, "cvr": 0} and report.best_check == 2
    assert report.kept == kept and report.stopped == {"ctr": True, "cvr": True}
    per_task = kept == "per_task"
    assert report.validation_auc == ({"ctr": 0.8, "cvr": 0.7} if per_task
                                     else {"ctr": 0.8, "cvr": 0.6})
    cvr_at = trainer.at_checks[0] if per_task else trainer.at_checks[2]
    now, shared_at = snapshot(network), trainer.at_checks[2]
    for var in own_variables(network, "cvr"):
        np.testing.assert_array_equal(_value(now, network, var), _value(cvr_at, network, var))
    for var in own_variables(network, "ctr") + network.biases + [
            t.embeddings for t in network.tables.values()]:
        np.testing.assert_array_equal(_value(now, network, var), _value(shared_at, network, var))
    moved_by_cvr_only = 0
    for i, kernel in enumerate(network.prunable_weights()):
        ctr, cvr = tickets["ctr"][i], tickets["cvr"][i]
        value = _value(now, network, kernel)
        for where, source in ((cvr & ~ctr, cvr_at), (ctr, shared_at), (~ctr & ~cvr, theta0)):
            np.testing.assert_array_equal(value[where], _value(source, network, kernel)[where])
        moved_by_cvr_only += int(np.sum(_value(trainer.at_checks[0], network, kernel)[cvr & ~ctr]
                                        != _value(shared_at, network, kernel)[cvr & ~ctr]))
    assert moved_by_cvr_only > 0          # CVR-only connections moved between the two checks


def test_dropout_acts_on_training_steps_only(toy_inputs):
    trainer = make_trainer(toy_inputs, dropout=0.5)
    network, batch = trainer.network, next(iter(toy_inputs.validation.batches(64)))
    kernels = network.effective_kernels()
    inference = network(batch, task="ctr").numpy()
    np.testing.assert_array_equal(inference, network(batch, task="ctr").numpy())
    np.testing.assert_array_equal(trainer.predict(toy_inputs.validation, "ctr"),
                                  trainer.predict(toy_inputs.validation, "ctr"))
    np.testing.assert_allclose(trainer.predict(toy_inputs.validation, "ctr")[:64],
                               tf.sigmoid(inference).numpy(), rtol=1e-5)
    training = [network.forward(batch, "ctr", kernels, training=True).numpy() for _ in range(2)]
    assert not np.allclose(training[0], training[1]) and not np.allclose(training[0], inference)
    # Two steps on the same batch from the same state differ only by their dropout draws.
    theta0, train_batch = snapshot(network), next(trainer.batches(toy_inputs.train, 0))[1]
    after = []
    for _ in range(2):
        restore(network, theta0)
        trainer.reset_optimizers()
        trainer.step(["ctr"], train_batch)
        after.append(snapshot(network))
    assert not same(after[0], after[1])


def _looked_up(table_features, batch, rows):
    """Ids the examples selected by `rows` look up in a table shared by `table_features`."""
    ids = [np.asarray(batch[name])[rows].ravel() for name in table_features]
    ids = np.concatenate(ids)
    return set(ids[ids >= 0].tolist())


def _tables(network, task):
    """(table, the features that look it up) for the shared tables and `task`'s linear term."""
    groups = Config().spec.vocabulary_groups()
    shared = [(network.tables[g].embeddings, [f for f in members if f in FIELDS])
              for g, members in groups.items()]
    return shared + [(t.embeddings, [name]) for name, t in network.linear[task].items()]


def test_l2_penalty_is_the_squared_norm_of_the_rows_each_example_looked_up(toy_inputs):
    network = make_trainer(toy_inputs, TASKS, linear_term=True).network
    rng = np.random.default_rng(0)
    for table in network.linear["ctr"].values():   # the linear term starts at zero
        table.embeddings.assign(rng.normal(size=table.embeddings.shape).astype(np.float32))
    batch = next(iter(toy_inputs.validation.batches(16)))
    for task in TASKS:
        _, penalty = network.forward(batch, task, network.effective_kernels(), with_penalty=True)
        expected = np.zeros(16)
        for table, names in _tables(network, task):
            values = table.numpy()
            for name in names:
                ids = np.asarray(batch[name]).reshape(16, -1)
                expected += np.where(ids >= 0, np.square(values[np.maximum(ids, 0)]).sum(-1),
                                     0.0).sum(-1)
        np.testing.assert_allclose(penalty.numpy(), expected, rtol=1e-5)


def test_a_step_with_l2_moves_only_rows_its_training_examples_looked_up(toy_inputs):
    """Embedding and linear rows no training example of the step looked up stay bit-identical
    (CVR trains on clicked rows only), and a step never touches the other task's linear term."""
    trainer = make_trainer(toy_inputs, TASKS, linear_term=True, embedding_l2=1.0)
    network, theta0 = trainer.network, snapshot(trainer.network)
    batch = next(trainer.batches(toy_inputs.train, 0))[1]
    clicked = np.asarray(batch[features.LABEL]) == 1
    for task, other, rows in (("ctr", "cvr", np.ones_like(clicked)), ("cvr", "ctr", clicked)):
        restore(network, theta0)
        trainer.reset_optimizers()
        before = [table.numpy() for table, _ in _tables(network, task)]
        other_before = own_values(network, other)
        trainer.step([task], batch)
        moved = 0
        for (table, names), old in zip(_tables(network, task), before):
            changed = set(np.flatnonzero(np.any(table.numpy() != old, axis=1)).tolist())
            assert changed <= _looked_up(names, batch, rows), (task, names)
            moved += len(changed)
        assert moved > 0
        assert same(own_values(network, other), other_before)
    assert (~clicked).any() and any(
        _looked_up(names, batch, ~clicked) - _looked_up(names, batch, clicked)
        for _, names in _tables(network, "cvr"))    # some rows only non-clicks looked up


def test_a_tasks_linear_term_is_its_own(toy_inputs):
    network = make_trainer(toy_inputs, TASKS, linear_term=True).network
    batch = next(iter(toy_inputs.validation.batches(16)))
    for task, other in (("ctr", "cvr"), ("cvr", "ctr")):
        variables = {v.ref() for v in network.task_variables(task)}
        linear = [t.embeddings for t in network.linear[task].values()]
        assert len(linear) == len(FIELDS) and all(v.ref() in variables for v in linear)
        assert not any(t.embeddings.ref() in variables for t in network.linear[other].values())
        before = {t: network(batch, task=t).numpy() for t in TASKS}
        for table in network.linear[other].values():
            table.embeddings.assign(tf.ones_like(table.embeddings))
        np.testing.assert_array_equal(network(batch, task=task).numpy(), before[task])
        assert not np.array_equal(network(batch, task=other).numpy(), before[other])


def test_loss_weights_scale_each_tasks_learning_rate(toy_inputs):
    base = small_config().model.learning_rate
    weighted = make_trainer(toy_inputs, TASKS, loss_weights={"ctr": 0.5, "cvr": 2.0})
    plain = make_trainer(toy_inputs, TASKS)
    for task, weight in (("ctr", 0.5), ("cvr", 2.0)):
        assert float(weighted.optimizers[task].learning_rate) == pytest.approx(base * weight)
        assert float(plain.optimizers[task].learning_rate) == pytest.approx(base)


def test_loss_weights_scale_the_steps_and_zero_freezes_the_task(toy_inputs):
    """Adam's first step is lr * g / (|g| + eps): half the weight, half the step; weight 0: the
    task's steps change nothing, not even its own head."""
    half = make_trainer(toy_inputs, TASKS, loss_weights={"ctr": 0.5, "cvr": 0.0})
    full = make_trainer(toy_inputs, TASKS)
    theta0, batch = snapshot(full.network), next(full.batches(toy_inputs.train, 0))[1]
    assert same(snapshot(half.network), theta0)
    deltas = []
    for trainer in (half, full):
        trainer.step(["ctr"], batch)
        deltas.append([after - before for after, before in zip(snapshot(trainer.network), theta0)])
    for small, large in zip(*deltas):
        np.testing.assert_allclose(small, 0.5 * large, rtol=1e-3, atol=1e-7)
    assert any(np.any(d != 0) for d in deltas[1])
    for trainer, frozen in ((half, True), (full, False)):
        before, head = snapshot(trainer.network), own_values(trainer.network, "cvr")
        trainer.step(["cvr"], batch)
        assert same(snapshot(trainer.network), before) == frozen
        assert same(own_values(trainer.network, "cvr"), head) == frozen


def _bce(labels, logits):
    """NumPy binary cross-entropy on sigmoid(logits)."""
    p = 1 / (1 + np.exp(-logits))
    return -(labels * np.log(p) + (1 - labels) * np.log(1 - p))


def _focal(labels, logits, alpha=0.75, gamma=2.0):
    """NumPy focal loss (Lin et al.) on sigmoid(logits)."""
    p = 1 / (1 + np.exp(-logits))
    p_t = labels * p + (1 - labels) * (1 - p)
    return -(labels * alpha + (1 - labels) * (1 - alpha)) * (1 - p_t) ** gamma * np.log(p_t)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _with_task(task, **changes):
    """The LT4REC spec with `task`'s entry changed (a spec lists its tasks whole)."""
    tasks = [dataclasses.asdict(t) for t in Config().spec.tasks]
    for entry in tasks:
        if entry["name"] == task:
            entry.update(changes)
    return Config.from_dict({"spec": {"tasks": tasks}}).spec.task(task)


# y: click, c: conversion, r: completion rate, z: logits (the batch below).
@pytest.mark.parametrize("task, changes, expected", [
    ("ctr", {}, lambda y, c, r, z: _focal(y, z)),                     # the shipped default
    ("ctr", {"loss": "bce", "focal_alpha": None, "focal_gamma": None},
     lambda y, c, r, z: _bce(y, z)),
    ("ctr", {"focal_alpha": 0.25, "focal_gamma": 1.0}, lambda y, c, r, z: _focal(y, z, 0.25, 1.0)),
    ("ctr", {"loss": "mse", "focal_alpha": None, "focal_gamma": None},
     lambda y, c, r, z: (_sigmoid(z) - y) ** 2),
    ("cvr", {}, lambda y, c, r, z: _bce(c, z) * y),
    ("cvr", {"loss": "mse", "target": "cvrlabel"}, lambda y, c, r, z: (_sigmoid(z) - r) ** 2 * y),
    ("cvr", {"loss": "mse"}, lambda y, c, r, z: (_sigmoid(z) - c) ** 2 * y),
    ("cvr", {"loss": "focal"}, lambda y, c, r, z: _focal(c, z) * y),
    ("cvr", {"rows": "cvrlabel > 0.2"}, lambda y, c, r, z: _bce(c, z) * (r > 0.2)),
])
def test_each_loss_and_rows_are_the_ones_the_task_spec_names(task, changes, expected):
    """The loss (focal with its parameters, bce, mse towards the label or a target column) and
    the rows come from the task's spec entry, not from its name: a task read by name would
    fail every non-default case."""
    click = np.array([1, 0, 1, 0, 1], np.int64)
    conversion = np.array([1, 0, 0, 0, 1], np.float32)
    completion = np.array([0.9, 0.0, 0.3, 0.0, 1.0], np.float32)
    logits = np.array([2.0, -1.0, 0.5, 3.0, -0.5], np.float32)
    spec = _with_task(task, **changes)
    batch = {features.LABEL: tf.constant(click), features.CONVERSION: tf.constant(conversion),
             features.CVR_LABEL: tf.constant(completion)}
    if spec.rows_column not in (None, features.LABEL):      # a rule: Transform's 0/1 column
        batch[spec.rows_column] = tf.constant((completion > 0.2).astype(np.float32))
    np.testing.assert_allclose(
        task_lib.per_example_loss(spec, batch, tf.constant(logits)).numpy(),
        expected(click, conversion, completion, logits.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_padding_never_reaches_a_table_row():
    """A row with Adam momentum from an earlier step must not move on a step whose list only
    pads: padding once mapped to row 0, which put it into the sparse gradient."""
    from tf_keras import layers

    from modules.lazy_adam import LazyAdam
    from modules.model import _lookup
    table = layers.Embedding(5, 2)
    table.build((None,))
    optimizer = LazyAdam(0.1)
    optimizer.build([table.embeddings])

    def step(ids):
        with tf.GradientTape() as tape:
            pooled, _ = _lookup(table, features.MULTI_VALUED[0],
                                {features.MULTI_VALUED[0]: tf.constant(ids)}, is_list=True)
            loss = tf.reduce_sum(pooled)
        optimizer.apply_gradients(zip(tape.gradient(loss, [table.embeddings]),
                                      [table.embeddings]))

    step([[0, 1]])                              # rows 0 and 1 get momentum
    before = table.embeddings.numpy().copy()
    step([[2, -1], [-1, -1]])                   # only row 2 is looked up (and an empty list)
    after = table.embeddings.numpy()
    np.testing.assert_array_equal(after[[0, 1, 3, 4]], before[[0, 1, 3, 4]])
    assert not np.array_equal(after[2], before[2])
