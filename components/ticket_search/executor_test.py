"""TicketSearch on toy data: densities, rewinding, masking, determinism, selection, artifacts."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from components.ticket_search import executor
from conftest import small_config
from modules import inputs as inputs_lib
from modules import masks as masks_lib
from modules import pruning, ticket_search
from modules.training import MaskedTrainer


class RecordingTrainer(MaskedTrainer):
    """A real MaskedTrainer that also records the weights and masks at the start of each round."""

    starts = []

    def train(self, examples, schedule, epochs, seed, on_step=None):
        kernels = self.network.prunable_weights()
        before = {"weights": ticket_search.snapshot(self.network),
                  "iterations": {t: int(o.iterations) for t, o in self.optimizers.items()},
                  "masks": {t: [m.numpy().astype(bool) for m in ms] for t, ms in self.masks.items()},
                  "kernels": [k.numpy().copy() for k in kernels], "task": schedule(0)[0]}
        steps = super().train(examples, schedule, epochs, seed, on_step)
        before["kernels_after"] = [k.numpy().copy() for k in kernels]
        RecordingTrainer.starts.append(before)
        return steps


@pytest.fixture
def search(toy_inputs, tmp_path, monkeypatch):
    RecordingTrainer.starts = []
    monkeypatch.setattr(executor, "MaskedTrainer", RecordingTrainer)
    config = small_config()
    report = executor.run_search(toy_inputs, config, str(tmp_path), str(tmp_path / "logs"))
    return config, report, tmp_path


def test_round_densities_are_exact_and_pruning_is_global(search):
    config, report, _ = search
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


def test_every_round_starts_from_theta0_with_fresh_optimizer(search, toy_inputs):
    config, _, out = search
    starts = RecordingTrainer.starts
    assert len(starts) == 2 * 3
    theta0 = starts[0]["weights"]
    for start in starts:
        assert all(np.array_equal(a, b) for a, b in zip(start["weights"], theta0))
        assert all(i == 0 for i in start["iterations"].values())
    # The θ0 checkpoint in the artifact restores exactly these values into a new network.
    network = inputs_lib.build_network(toy_inputs, small_config(model={"seed": 99}), ["ctr", "cvr"])
    tf.train.Checkpoint(network=network).read(
        executor.theta0_prefix(str(out))).assert_existing_objects_matched()
    assert all(np.array_equal(a, b) for a, b in zip(ticket_search.snapshot(network), theta0))


def test_masked_out_weights_never_move_during_training(search):
    for start in RecordingTrainer.starts:
        masks = start["masks"][start["task"]]
        for mask, before, after in zip(masks, start["kernels"], start["kernels_after"]):
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


def test_same_seed_same_masks_and_different_seed_different_masks(toy_inputs, tmp_path):
    config = small_config()
    a = executor.run_search(toy_inputs, config, str(tmp_path / "a"))
    b = executor.run_search(toy_inputs, config, str(tmp_path / "b"))
    c = executor.run_search(toy_inputs, small_config(model={"seed": 4}), str(tmp_path / "c"))
    masks_a, masks_b, masks_c = (masks_lib.load(str(tmp_path / d)) for d in "abc")
    for task in ("ctr", "cvr"):
        assert all(np.array_equal(x, y) for x, y in zip(masks_a[task], masks_b[task]))
        assert not all(np.array_equal(x, y) for x, y in zip(masks_a[task], masks_c[task]))
    assert a["tasks"] == b["tasks"]
    assert c["seed"] == 4


def test_masks_round_trip_without_pickle_and_report_matches(search):
    _, report, out = search
    assert (out / executor.REPORT_FILE).exists() and (out / executor.PLOT_FILE).exists()
    on_disk = json.loads((out / executor.REPORT_FILE).read_text())
    assert on_disk == json.loads(json.dumps(report))
    loaded = masks_lib.load(str(out))
    for task, result in report["tasks"].items():
        with np.load(out / result["mask_file"], allow_pickle=False) as npz:
            assert sorted(npz.files) == ["mlp_0", "mlp_1", "mlp_2"][:len(npz.files)]
            assert all(npz[f].dtype == bool for f in npz.files)
        chosen = result["rounds"][result["chosen_round"]]
        assert pruning.density(loaded[task]) == pytest.approx(chosen["density"])
        assert [float(m.mean()) for m in loaded[task]] == pytest.approx(chosen["layer_density"])
    overlap = pruning.overlap(loaded["ctr"], loaded["cvr"])
    assert overlap["shared"] == report["overlap"]["shared"]
    assert os.listdir(out / "logs" / "ctr")


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


def test_late_rewinding_restarts_later_rounds_from_step_k(toy_inputs, tmp_path, monkeypatch):
    RecordingTrainer.starts = []
    monkeypatch.setattr(executor, "MaskedTrainer", RecordingTrainer)
    config = small_config(ticket={"rewind_step": 3, "tasks": ["ctr"]})
    executor.run_search(toy_inputs, config, str(tmp_path))
    theta0, round1, round2 = (s["weights"] for s in RecordingTrainer.starts)
    assert all(np.array_equal(a, b) for a, b in zip(round1, round2))      # same rewind point
    assert not all(np.array_equal(a, b) for a, b in zip(round1, theta0))  # ... and it is not θ0


def test_rewind_step_beyond_round_zero_is_refused(toy_inputs, tmp_path):
    config = small_config(ticket={"rewind_step": 10_000, "tasks": ["ctr"]})
    with pytest.raises(ValueError, match="rewind_step = 10000 exceeds"):
        executor.run_search(toy_inputs, config, str(tmp_path))
