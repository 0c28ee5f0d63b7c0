"""The streaming reader, streaming AUC and the embedding-table memory budget."""
import dataclasses
import os

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from modules import data, memory, streaming_metrics, tasks
from modules import features
from modules.config import Config

ROWS_PER_SHARD = (70, 130, 45, 55)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Four gzip shards of rows numbered 0..299 (`row`), with a 2-wide list feature."""
    directory, start, files = tmp_path_factory.mktemp("shards"), 0, []
    for i, rows in enumerate(ROWS_PER_SHARD):
        ids = np.arange(start, start + rows, dtype=np.int64)
        arrays = {"row": ids, "pair": np.stack([ids, -ids], axis=1),
                  "score": (ids / 1000.0).astype(np.float32)}
        files.append(data.write_examples(arrays, str(directory / f"part-{i}.gz")))
        start += rows
    return files, data.feature_spec_of(arrays)


def reader(shards, **options):
    files, spec = shards
    return data.Examples(files, spec, dataclasses.replace(Config().input, **options))


def rows_of(examples, batch_size=32, **order):
    batches = list(examples.batches(batch_size, **order))
    assert all(int(b["row"].shape[0]) == batch_size for b in batches[:-1])
    rows = np.concatenate([b["row"].numpy() for b in batches])
    pairs = np.concatenate([b["pair"].numpy() for b in batches])
    np.testing.assert_array_equal(pairs, np.stack([rows, -rows], axis=1))   # parsed per row
    return rows.tolist()


@pytest.mark.parametrize("cache", [False, True])
def test_every_row_exactly_once_per_epoch_in_a_seeded_order(shards, cache):
    examples = reader(shards, shuffle_buffer=50, interleave_files=2, cache=cache)
    total = sum(ROWS_PER_SHARD)
    assert examples.num_rows == total
    first = rows_of(examples, seed=7, epoch=0)
    assert sorted(first) == list(range(total))                      # each row once
    assert first != sorted(first)                                   # shuffled
    assert rows_of(examples, seed=7, epoch=0) == first              # same (seed, epoch): same
    orders = [rows_of(examples, seed=7, epoch=e) for e in (1, 2)] + [rows_of(examples, seed=8)]
    for order in orders:
        assert sorted(order) == list(range(total)) and order != first
    assert rows_of(examples) == rows_of(examples)                   # unshuffled: fixed order
    assert sorted(rows_of(examples)) == list(range(total))


def test_a_split_within_the_buffer_has_one_order_however_its_files_hold_the_rows(
        shards, tmp_path):
    """The same rows, written by another Beam run to other files in another order, train in
    the same order (the order is a function of the rows, the seed and the epoch)."""
    total = sum(ROWS_PER_SHARD)
    rng = np.random.default_rng(0)
    rows = rng.permutation(total).astype(np.int64)
    files = [data.write_examples(
        {"row": part, "pair": np.stack([part, -part], axis=1),
         "score": (part / 1000.0).astype(np.float32)}, str(tmp_path / f"other-{i}.gz"))
        for i, part in enumerate(np.split(rows, [100, 120]))]
    for cache in (False, True):
        original = reader(shards, shuffle_buffer=total, cache=cache)
        rewritten = reader((files, shards[1]), shuffle_buffer=total, cache=cache)
        for seed, epoch in ((7, 0), (7, 1), (8, 0)):
            order = rows_of(original, seed=seed, epoch=epoch)
            assert sorted(order) == list(range(total)) and order != sorted(order)
            assert rows_of(rewritten, seed=seed, epoch=epoch) == order
        assert rows_of(original, seed=7) != rows_of(original, seed=8)
    # a split larger than the buffer is read in file order: the files decide
    assert rows_of(reader(shards, shuffle_buffer=total - 1), seed=7) != rows_of(
        reader((files, shards[1]), shuffle_buffer=total - 1), seed=7)


def test_the_cache_option_reads_the_files_once(shards, tmp_path):
    copies = [str(tmp_path / os.path.basename(f)) for f in shards[0]]
    for source, copy in zip(shards[0], copies):
        with open(source, "rb") as f, open(copy, "wb") as out:
            out.write(f.read())
    examples = reader((copies, shards[1]), cache=True)
    first = rows_of(examples, seed=3)
    for copy in copies:
        os.remove(copy)
    assert sorted(rows_of(examples, seed=3, epoch=1)) == sorted(first)   # served from memory


def test_a_small_buffer_only_mixes_nearby_rows_and_the_shard_order_changes_per_epoch(shards):
    """Large data: the shuffle buffer bounds how far a row moves; the shard order is what
    reshuffles globally from one epoch to the next."""
    buffer, starts = 10, np.cumsum((0,) + ROWS_PER_SHARD)
    assert min(ROWS_PER_SHARD) >= buffer
    examples = reader(shards, shuffle_buffer=buffer, interleave_files=1)
    unshuffled = reader(shards, shuffle_buffer=1, interleave_files=1)
    shard_orders = []
    for epoch in range(3):
        order = rows_of(examples, seed=1, epoch=epoch)
        # One file at a time, the buffer reads whole shards in turn; a shard of >= buffer rows
        # starts leaving it before the next one does, so first appearances give the shard order.
        shard_order = list(dict.fromkeys(np.searchsorted(starts, order, side="right") - 1))
        read = [r for shard in shard_order for r in range(starts[shard], starts[shard + 1])]
        position = {row: p for p, row in enumerate(read)}
        # The row read p-th enters a full buffer after p - buffer + 1 rows have left it: it
        # moves at most buffer - 1 places ahead (and some do).
        assert max(position[row] - k for k, row in enumerate(order)) == buffer - 1
        assert rows_of(unshuffled, seed=1, epoch=epoch) == read     # what the buffer reads
        shard_orders.append(shard_order)
    assert shard_orders[0] != shard_orders[1]


def test_streamed_auc_matches_sklearn_within_its_reported_bound():
    rng = np.random.default_rng(0)
    labels = (rng.random(200_000) < 0.1).astype(np.float32)
    scores = 1 / (1 + np.exp(-(rng.normal(-2.5, 0.8, labels.size) + 0.9 * labels)))
    scores[:2000] = 0.25                                              # exact ties count 1/2
    histogram = streaming_metrics.ScoreHistogram()
    for part in np.array_split(np.arange(labels.size), 7):            # any batching
        histogram.update(labels[part], scores[part].astype(np.float32),
                         np.ones(part.size, dtype=bool))
    result = histogram.result()
    exact = roc_auc_score(labels, scores.astype(np.float32))
    assert result["rows"] == labels.size and result["positives"] == int(labels.sum())
    assert abs(result["auc"] - exact) <= result["auc_max_error"] + 1e-9
    assert abs(result["auc"] - exact) < 1e-3 and result["auc_max_error"] < 1e-3
    assert result["calibration"] == pytest.approx(scores.astype(np.float32).mean()
                                                  / labels.mean(), rel=1e-6)
    histogram.reset()
    assert histogram.result()["rows"] == 0 and histogram.result()["auc"] is None


def test_cvr_rows_are_the_clicked_rows():
    batch = {features.LABEL: np.array([1, 1, 0, 1]),
             features.CONVERSION: np.array([1.0, 0.0, 1.0, 0.0], np.float32)}
    histogram = streaming_metrics.ScoreHistogram()
    labels, rows = tasks.eval_rows(Config().spec, "cvr", batch)
    histogram.update(labels, np.array([0.9, 0.1, 0.0, 0.8], np.float32), rows)
    result = histogram.result()
    assert (result["rows"], result["positives"]) == (3, 1)
    assert result["auc"] == pytest.approx(roc_auc_score([1, 0, 0], [0.9, 0.1, 0.8]))


def sizes(**rows):
    return {group: rows.get(group, 1000) for group in Config().spec.vocabulary_groups()}


def test_tables_over_the_memory_budget_are_refused_naming_the_group():
    config = Config.from_dict({"model": {"table_memory_budget_mb": 4096}})
    logged = []
    tables = memory.check_budget(sizes(FEA_UID=1_000_000), config, ("ctr", "cvr"),
                                 log=logged.append)
    assert any(line.startswith("embedding table FEA_UID: 1,000,000 rows") for line in logged)
    assert sum(t["total_mb"] for t in tables.values()) < 4096
    with pytest.raises(memory.MemoryBudgetError,
                       match=r"over model.table_memory_budget_mb = 4,096.*FEA_UID .*"
                             r"\(30,000,000 rows\).*spec.groups"):
        memory.check_budget(sizes(FEA_UID=30_000_000), config, ("ctr", "cvr"))
    unlimited = Config.from_dict({"model": {"table_memory_budget_mb": 0}})
    memory.check_budget(sizes(FEA_UID=30_000_000), unlimited, ("ctr", "cvr"))
