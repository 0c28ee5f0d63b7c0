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


def overlap(masks):
    """Sharing statistics among the tasks' masks ({task: [layer masks]}, in task order), overall
    and per layer: `shared` connections every task keeps, `union` those any keeps, `jaccard` =
    shared / union (for two tasks their Jaccard index), and `pairwise` N x N matrices of each
    pair's Jaccard index and shared count."""
    tasks = list(masks)

    def stats(arrays):
        every, anyone = np.logical_and.reduce(arrays), np.logical_or.reduce(arrays)
        shared, union = int(every.sum()), int(anyone.sum())
        return {"shared": shared, "union": union, "total": int(every.size),
                "shared_fraction_of_total": shared / every.size,
                "jaccard": shared / union if union else 1.0}
    flat = {t: np.concatenate([m.ravel() for m in masks[t]]) for t in tasks}
    overall = stats([flat[t] for t in tasks])
    pairs = {(a, b): stats([flat[a], flat[b]]) for a in tasks for b in tasks}
    overall["tasks"] = tasks
    overall["pairwise"] = {key: [[pairs[a, b][key] for b in tasks] for a in tasks]
                           for key in ("jaccard", "shared")}
    overall["per_layer"] = [stats([masks[t][i] for t in tasks])
                            for i in range(len(masks[tasks[0]]))]
    return overall
