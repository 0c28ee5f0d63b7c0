"""Global magnitude pruning: exact counts, one global threshold, determinism."""
import numpy as np
import pytest

from modules import pruning


def test_target_count_follows_keep_per_round():
    keep = 0.2 ** 0.25
    assert [pruning.target_count(532480, keep, k) for k in range(5)] == [
        532480, round(keep * 532480), round(keep ** 2 * 532480), round(keep ** 3 * 532480),
        round(0.2 * 532480)]


def test_prune_keeps_exact_count_of_largest_unmasked_weights_globally():
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 1.0, (30, 20)), rng.normal(0, 0.3, (20, 10))]  # layer 2 is smaller
    masks = pruning.ones_like(weights)
    kept = pruning.prune_global(weights, masks, 300)
    assert sum(int(m.sum()) for m in kept) == 300
    survivors = np.concatenate([np.abs(w[m]) for w, m in zip(weights, kept)])
    pruned = np.concatenate([np.abs(w[~m]) for w, m in zip(weights, kept)])
    assert survivors.min() >= pruned.max()          # one threshold across all layers
    assert kept[0].mean() > 0.45 and kept[1].mean() < 0.2    # so densities differ per layer


def test_prune_only_removes_from_still_unmasked_weights():
    rng = np.random.default_rng(1)
    weights = [rng.normal(size=(10, 10))]
    masks = [np.abs(weights[0]) < 1.0]          # big weights already pruned
    kept = pruning.prune_global(weights, masks, 20)
    assert not np.any(kept[0] & ~masks[0])
    assert kept[0].sum() == 20


def test_ties_are_broken_deterministically():
    weights = [np.ones((4, 4)), np.ones((4, 4))]
    a = pruning.prune_global(weights, pruning.ones_like(weights), 10)
    b = pruning.prune_global(weights, pruning.ones_like(weights), 10)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert sum(int(m.sum()) for m in a) == 10


def test_cannot_keep_more_than_alive():
    with pytest.raises(ValueError, match="cannot keep"):
        pruning.prune_global([np.ones((2, 2))], [np.ones((2, 2), bool)], 5)


def test_overlap_statistics_of_two_and_of_three_tasks():
    a = [np.array([[1, 1, 0, 0]], bool), np.array([[1, 1]], bool)]
    b = [np.array([[1, 0, 1, 0]], bool), np.array([[0, 1]], bool)]
    c = [np.array([[1, 1, 1, 0]], bool), np.array([[0, 0]], bool)]
    stats = pruning.overlap({"a": a, "b": b})
    assert (stats["shared"], stats["union"], stats["total"]) == (2, 5, 6)
    assert stats["jaccard"] == pytest.approx(2 / 5)
    assert stats["per_layer"][0]["shared_fraction_of_total"] == 0.25
    assert stats["per_layer"][1]["jaccard"] == 0.5
    assert stats["pairwise"]["shared"] == [[4, 2], [2, 3]]
    three = pruning.overlap({"a": a, "b": b, "c": c})
    assert three["tasks"] == ["a", "b", "c"]
    assert (three["shared"], three["union"]) == (1, 5)          # kept by all / by any
    np.testing.assert_allclose(three["pairwise"]["jaccard"],
                               [[1.0, 2 / 5, 2 / 5], [2 / 5, 1.0, 2 / 4], [2 / 5, 2 / 4, 1.0]])
    assert three["pairwise"]["shared"] == [[4, 2, 2], [2, 3, 2], [2, 2, 3]]
    assert three["per_layer"][1] == {"shared": 0, "union": 2, "total": 2,
                                     "shared_fraction_of_total": 0.0, "jaccard": 0.0}
