"""The report's mask sections for N tasks, from mask arrays alone (no pipeline run)."""
import numpy as np

from modules import pruning
from pipeline import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _masks(tasks, seed=0):
    rng = np.random.default_rng(seed)
    return {t: [rng.random((12, 6)) < 0.4, rng.random((6, 3)) < 0.6] for t in tasks}


def _run(masks, tasks):
    return {"masks": masks, "outputs": {"tasks": tasks, "products": {}, "reference_scores": {}},
            "ticket_report": None}


def test_three_tasks_get_the_pairwise_overlap_matrix_and_no_pair_plots(tmp_path):
    tasks = ["click", "finish", "like"]
    masks = _masks(tasks)
    stats = report.mask_stats(masks, tasks)
    assert stats["tasks"] == tasks and "categories" not in stats["layers"][0]
    overall = pruning.overlap(masks)
    assert stats["overall"]["pairwise"] == overall["pairwise"]
    assert stats["overall"]["shared"] == overall["shared"]
    page = report._mask_section(_run(masks, tasks), str(tmp_path))
    assert "mask_overlap_matrix.png" in page
    assert "mask_maps.png" not in page and "mask_overlap.png" not in page
    assert f"Connections every task keeps: {overall['shared']:,} of {overall['total']:,}" in page
    for task in tasks:
        assert f"{task} density" in page
    image = tmp_path / "mask_overlap_matrix.png"
    assert image.read_bytes()[:8] == PNG_MAGIC


def test_two_tasks_keep_their_pair_categories_and_maps(tmp_path):
    tasks = ["ctr", "cvr"]
    masks = _masks(tasks, seed=1)
    stats = report.mask_stats(masks, tasks)
    a, b = masks["ctr"][0], masks["cvr"][0]
    assert stats["layers"][0]["categories"] == {
        "ctr only": float(np.mean(a & ~b)), "shared": float(np.mean(a & b)),
        "cvr only": float(np.mean(~a & b)), "pruned by both": float(np.mean(~a & ~b))}
    page = report._mask_section(_run(masks, tasks), str(tmp_path))
    for name in ("mask_overlap_matrix.png", "mask_overlap.png", "mask_maps.png"):
        assert name in page and (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
