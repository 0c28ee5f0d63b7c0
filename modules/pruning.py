"""Global magnitude pruning of the prunable set, with exact target counts (numpy only)."""
import numpy as np


def ones_like(weights):
    """All-ones (dense) masks for a list of kernels."""
    return [np.ones(w.shape, dtype=bool) for w in weights]


def target_count(total, keep_per_round, round_index):
    """Weights kept after `round_index` pruning rounds: round(keep^k * total)."""
    return int(round(keep_per_round ** round_index * total))


def prune_global(weights, masks, keep):
    """Keep the `keep` largest-|w| weights among those still unmasked, across all layers.

    One threshold for every layer (global pruning). Ties are broken by position (stable sort), so
    the result is deterministic and keeps exactly `keep` weights.
    """
    alive = np.concatenate([np.abs(w[m]) for w, m in zip(weights, masks)])
    if not 0 <= keep <= alive.size:
        raise ValueError(f"cannot keep {keep} of {alive.size} unmasked weights")
    order = np.argsort(-alive, kind="stable")
    keep_alive = np.zeros(alive.size, dtype=bool)
    keep_alive[order[:keep]] = True
    new_masks, start = [], 0
    for mask in masks:
        count = int(mask.sum())
        new = np.zeros(mask.shape, dtype=bool)
        new[mask] = keep_alive[start:start + count]
        new_masks.append(new)
        start += count
    return new_masks


def density(masks):
    """Fraction of connections kept across all layers."""
    return float(sum(m.sum() for m in masks)) / float(sum(m.size for m in masks))


def overlap(a, b):
    """Sharing statistics between two tasks' masks, per layer and overall."""
    def stats(x, y):
        both, either = int(np.sum(x & y)), int(np.sum(x | y))
        return {"shared": both, "union": either, "total": int(x.size),
                "shared_fraction_of_total": both / x.size,
                "jaccard": both / either if either else 1.0,
                "shared_fraction_of_first": both / max(int(x.sum()), 1),
                "shared_fraction_of_second": both / max(int(y.sum()), 1)}
    overall = stats(np.concatenate([m.ravel() for m in a]), np.concatenate([m.ravel() for m in b]))
    overall["per_layer"] = [stats(x, y) for x, y in zip(a, b)]
    return overall
