"""TicketSearch on toy data: densities, rewinding, masking, determinism, selection, artifacts."""
import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import small_config
from modules import data, features, mtl, pruning, ticket_search
from modules import inputs as inputs_lib
from modules import masks as masks_lib
from modules.training import MaskedTrainer, restore, snapshot
from modules.config import EarlyStoppingConfig


class RecordingTrainer(MaskedTrainer):
    """A real MaskedTrainer that also records, for each `fit`, the weights, optimizer steps,
    whether each Adam moment is all zeros, and masks it starts from and the kernels it keeps."""

    fits = []

    def fit(self, train, validation, tasks, schedule, stopping, seed, on_log=None):
        kernels = self.network.prunable_weights()
        record = {"weights": snapshot(self.network),
                  "iterations": {t: int(o.iterations) for t, o in self.optimizers.items()},
                  "zero_moments": {t: [not np.any(v.numpy()) for v in o.variables
                                       if v is not o.iterations]
                                   for t, o in self.optimizers.items()},
                  "masks": {t: [m.numpy().astype(bool) for m in ms]
                            for t, ms in self.masks.items()},
                  "kernels": [k.numpy().copy() for k in kernels], "tasks": list(tasks)}
        report = super().fit(train, validation, tasks, schedule, stopping, seed, on_log)
        record["kernels_after"] = [k.numpy().copy() for k in kernels]
        RecordingTrainer.fits.append(record)
        return report


def search_config(**overrides):
    """small_config with full batches (600 rows / 60): one trace per step function, faster."""
    return small_config(**{**overrides, "model": {"batch_size": 60, **overrides.get("model", {})}})


def stale_optimizers(fit):
    """The tasks (trained or holding an optimizer) whose optimizer a recorded fit starts with is
    missing, or not at step 0 with every Adam moment (m and v of each variable) all zeros."""
    return [t for t in sorted(set(fit["tasks"]) | set(fit["zero_moments"]))
            if fit["iterations"].get(t) != 0 or not fit["zero_moments"].get(t)
            or not all(fit["zero_moments"][t])]


def same(a, b):
    """Whether two weight lists are bit-identical."""
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def checkpoint_values(inputs, prefix):
    """The values a checkpoint restores into a new, differently seeded network."""
    network = inputs_lib.build_network(inputs, search_config(model={"seed": 99}),
                                       features.TASKS)
    tf.train.Checkpoint(network=network).read(prefix).assert_existing_objects_matched()
    return snapshot(network)


def rewind_prefix(out):
    """Where a search with late rewinding stores the rewind point."""
    return os.path.join(str(out), ticket_search.REWIND_DIR, "ckpt")


def recorded_search(inputs, config, out, log_dir=None):
    """run_search through a RecordingTrainer: (config, report, out dir, the fits it recorded)."""
    RecordingTrainer.fits = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ticket_search, "MaskedTrainer", RecordingTrainer)
        report = ticket_search.run_search(inputs, config, str(out), log_dir)
    return config, report, out, list(RecordingTrainer.fits)


@pytest.fixture(scope="module")
def inputs(module_toy_inputs):
    """conftest's toy inputs, once per module (the searches are the cost)."""
    return module_toy_inputs


@pytest.fixture(scope="module")
def search(inputs, tmp_path_factory):
    """One recorded search with the module's config, logging under `logs/`."""
    out = tmp_path_factory.mktemp("search")
    return recorded_search(inputs, search_config(), out, str(out / "logs"))


@pytest.fixture(scope="module")
def rewound(inputs, tmp_path_factory):
    """A recorded search with late rewinding to step 3."""
    return recorded_search(inputs, search_config(ticket={"rewind_step": 3}),
                           tmp_path_factory.mktemp("rewound"))


def test_round_densities_are_exact_and_pruning_is_global(search):
    config, report, _, _ = search
    total = report["prunable_total"]
    assert total == sum(a * b for a, b in report["prunable_layers"])
    for task in ("ctr", "cvr"):
        rounds = report["tasks"][task]["rounds"]
        assert len(rounds) == config.ticket.rounds + 1
        for k, r in enumerate(rounds):
            expected = round(config.ticket.keep_per_round ** k * total)
            assert abs(r["kept"] - expected) <= 1
            assert r["density"] == pytest.approx(r["kept"] / total)
        final = rounds[-1]["layer_density"]
        assert max(final) - min(final) > 0.02      # one global threshold, unequal layers


def test_every_round_starts_from_theta0_with_fresh_optimizer(search, inputs):
    _, report, out, fits = search
    assert len(fits) == 2 * 3 and [f["tasks"] for f in fits] == [["ctr"]] * 3 + [["cvr"]] * 3
    # Without late rewinding the start of every round is θ0, exactly as the artifact stores it.
    theta0 = checkpoint_values(inputs, ticket_search.theta0_prefix(str(out)))
    for fit in fits:
        assert same(fit["weights"], theta0)
        assert not stale_optimizers(fit)
    assert report["rewind_step"] == 0
    assert ticket_search.start_prefix(str(out)) == ticket_search.theta0_prefix(str(out))
    assert not os.path.exists(out / ticket_search.REWIND_DIR)


def test_masked_out_weights_never_move_during_training(search):
    for fit in search[3]:
        (task,) = fit["tasks"]
        for mask, before, after in zip(fit["masks"][task], fit["kernels"], fit["kernels_after"]):
            assert np.array_equal(before[~mask], after[~mask])
            assert not np.array_equal(before[mask], after[mask])


def test_masked_weights_are_exact_zeros_in_the_forward_pass(toy_inputs):
    config = small_config()
    network = inputs_lib.build_network(toy_inputs, config, ["ctr"])
    batch = next(iter(toy_inputs.evaluation.batches(32)))
    masks = [np.zeros(k.shape, np.float32) for k in network.prunable_weights()]
    masks[0][:, :4] = 1.0
    masks = [tf.constant(m) for m in masks]
    before = network(batch, task="ctr", masks=masks).numpy()
    kernel = network.prunable_weights()[0]
    kernel.assign(tf.where(tf.cast(masks[0], bool), kernel, 1e3))   # blow up masked entries
    after = network(batch, task="ctr", masks=masks).numpy()
    np.testing.assert_array_equal(before, after)


def _outcome(report, out):
    """What a search chose, per task: (masks, chosen round, every round's validation AUC)."""
    masks = masks_lib.load(str(out))
    return {task: (masks[task], result["chosen_round"], [r["metric"] for r in result["rounds"]])
            for task, result in report["tasks"].items()}


def _untimed(tasks):
    """A report's tasks without each round's wall seconds (the one thing a rerun changes)."""
    return {task: {**result, "rounds": [{k: v for k, v in r.items() if k != "seconds"}
                                        for r in result["rounds"]]}
            for task, result in tasks.items()}


def _same_outcome(a, b):
    return all(same(a[t][0], b[t][0]) and a[t][1:] == b[t][1:] for t in a)


def test_same_seed_same_masks_and_different_seed_different_masks(search, inputs, tmp_path):
    config, report, out, _ = search
    again = ticket_search.run_search(inputs, config, str(tmp_path / "b"))
    other = ticket_search.run_search(inputs, search_config(model={"seed": 4}), str(tmp_path / "c"))
    assert _same_outcome(_outcome(report, out), _outcome(again, tmp_path / "b"))
    assert _untimed(again["tasks"]) == _untimed(report["tasks"])
    masks, other_masks = masks_lib.load(str(out)), masks_lib.load(str(tmp_path / "c"))
    for task in ("ctr", "cvr"):
        assert not same(masks[task], other_masks[task])
    assert other["seed"] == 4


def flipped(examples):
    """The examples with clicks flipped (0 <-> 1) and conversions re-planted on the new clicks
    from the opposite FEA_CP signal, so that every AUC is still defined but reversed."""
    arrays = examples.read_arrays()
    click = 1 - arrays[features.LABEL]
    converts = (arrays["FEA_CP"] % 3 != 0) & (click == 1)
    arrays[features.LABEL] = click
    arrays[features.CONVERSION] = converts.astype(np.float32)
    arrays[features.CVR_LABEL] = (np.where(converts, 0.95, 0.4) * click).astype(np.float32)
    path = data.write_examples(arrays, examples.files[0] + ".flipped.gz")
    return data.Examples([path], examples.feature_spec, examples.config)


@pytest.mark.parametrize("split, choices_unchanged", [("evaluation", True),
                                                      ("validation", False)])
def test_only_validation_labels_decide_masks_rounds_and_metrics(search, inputs, tmp_path, split,
                                                                choices_unchanged):
    """Flipping the eval labels changes no choice; flipping the validation labels does (so the
    comparison would notice eval data leaking into a choice)."""
    config, report, out, _ = search
    changed = dataclasses.replace(inputs, **{split: flipped(getattr(inputs, split))})
    other = ticket_search.run_search(changed, config, str(tmp_path))
    assert _same_outcome(_outcome(report, out), _outcome(other, tmp_path)) == choices_unchanged
    for task, result in report["tasks"].items():
        assert result["selected_on"] == "validation"
        if split == "evaluation":                       # the flip did reach the eval numbers
            assert all(r["eval_auc"] != o["eval_auc"]
                       for r, o in zip(result["rounds"], other["tasks"][task]["rounds"]))


def test_select_round_prefers_best_metric_then_sparser():
    def r(k, density, metric):
        return ticket_search.RoundResult(k, 0, density, [], metric)
    rounds = [r(0, 1.0, 0.70), r(1, 0.6, 0.72), r(2, 0.4, 0.72), r(3, 0.2, 0.65)]
    assert ticket_search.select_round(rounds).round == 2
    assert ticket_search.select_round(rounds, min_density=0.5).round == 1
    assert ticket_search.select_round(rounds, tolerance=0.03).round == 2
    assert ticket_search.select_round(rounds, tolerance=0.08).round == 3
    assert ticket_search.select_round(rounds, max_density=0.3).round == 3
    with pytest.raises(ValueError, match="no round has a density"):
        ticket_search.select_round(rounds, min_density=0.9, max_density=0.95)


def test_rewind_point_is_the_weights_after_exactly_k_steps(inputs):
    """rewind_point(k) leaves the weights of step k of dense multi-task training from θ0 (all-ones masks, zeroed
    optimizers), within the first pass and across a pass boundary."""
    # Without dropout: the two runs below draw different dropout masks from the same layers.
    config = search_config(model={"dropout": 0.0, "log_every_steps": 1})
    network = inputs_lib.build_network(inputs, config, features.TASKS)
    trainer, theta0 = MaskedTrainer(network, inputs.strategy, config), snapshot(network)
    ones = pruning.ones_like([k.numpy() for k in network.prunable_weights()])
    sparse = [np.random.default_rng(0).random(m.shape) < 0.5 for m in ones]
    points = {}
    for k in (3, 13):                              # 10 batches per pass
        restore(network, theta0)
        for task in features.TASKS:                     # rewind_point must put all-ones masks back
            trainer.set_masks(task, sparse)
        ticket_search.rewind_point(trainer, inputs.train, features.TASKS, k, config.model.seed)
        points[k] = snapshot(network)
    restore(network, theta0)
    for task in features.TASKS:
        trainer.set_masks(task, ones)
    trainer.reset_optimizers()
    steps = [theta0]
    trainer.fit(inputs.train, inputs.validation, features.TASKS, lambda _: list(features.TASKS),
                EarlyStoppingConfig(max_epochs=2, patience=100), config.model.seed,
                on_log=lambda step, _: steps.append(snapshot(network)))
    for k, point in points.items():
        assert same(point, steps[k])
        assert not same(point, steps[k - 1]) and not same(point, steps[k + 1])


def test_late_rewinding_starts_every_round_from_the_stored_rewind_point(rewound, inputs):
    _, report, out, fits = rewound
    rewind = checkpoint_values(inputs, rewind_prefix(out))
    assert ticket_search.start_prefix(str(out)) == rewind_prefix(out)
    assert report["rewind_step"] == 3 and len(fits) == 2 * 3
    for fit in fits:                               # round 0 included, for both tasks
        assert same(fit["weights"], rewind)
        assert not stale_optimizers(fit)
    assert not same(rewind, checkpoint_values(inputs, ticket_search.theta0_prefix(str(out))))


def test_mtl_starts_from_the_rewind_point(rewound, inputs, monkeypatch):
    """With late rewinding MTL's first step starts from the rewind point, not θ0."""
    config, _, out, fits = rewound
    RecordingTrainer.fits = []
    monkeypatch.setattr(mtl, "MaskedTrainer", RecordingTrainer)
    mtl.train(inputs, config, masks_lib.load(str(out)), ticket_search.start_prefix(str(out)))
    (start,) = RecordingTrainer.fits
    rewind = checkpoint_values(inputs, rewind_prefix(out))
    assert same(start["weights"], rewind) and same(start["weights"], fits[0]["weights"])
    assert not stale_optimizers(start)


def test_masks_round_trip_without_pickle_and_report_matches(search):
    _, report, out, _ = search
    assert (out / ticket_search.REPORT_FILE).exists()
    assert (out / ticket_search.PLOT_FILE).exists()
    on_disk = json.loads((out / ticket_search.REPORT_FILE).read_text())
    assert on_disk == json.loads(json.dumps(report))
    loaded = masks_lib.load(str(out))
    for task, result in report["tasks"].items():
        with np.load(out / result["mask_file"], allow_pickle=False) as npz:
            assert sorted(npz.files) == ["mlp_0", "mlp_1", "mlp_2"][:len(npz.files)]
            assert all(npz[f].dtype == bool for f in npz.files)
        chosen = result["rounds"][result["chosen_round"]]
        assert pruning.density(loaded[task]) == pytest.approx(chosen["density"])
        assert [float(m.mean()) for m in loaded[task]] == pytest.approx(chosen["layer_density"])
        assert result["chosen_metric"] == chosen["validation_auc"] == chosen["metric"]
        assert result["chosen_eval_metric"] == chosen["eval_auc"]
    overlap = pruning.overlap({task: loaded[task] for task in features.TASKS})
    assert overlap["shared"] == report["overlap"]["shared"]
    assert report["overlap"]["tasks"] == list(features.TASKS)
    assert os.listdir(out / "logs" / "ctr")


def test_each_task_stores_the_weights_its_chosen_round_kept(search, inputs):
    """`tickets/<task>/` holds the chosen round's trained weights (what MTL compares with and,
    on negative transfer, serves), not another round's."""
    _, report, out, fits = search
    per_task = {"ctr": fits[:3], "cvr": fits[3:]}
    for task, result in report["tasks"].items():
        network = inputs_lib.build_network(inputs, search_config(model={"seed": 99}),
                                           features.TASKS)
        tf.train.Checkpoint(network=network).read(
            ticket_search.ticket_prefix(str(out), task)).assert_existing_objects_matched()
        kernels = [k.numpy() for k in network.prunable_weights()]
        rounds = [f["kernels_after"] for f in per_task[task]]
        assert same(kernels, rounds[result["chosen_round"]])
        assert not any(same(kernels, r) for i, r in enumerate(rounds)
                       if i != result["chosen_round"])
