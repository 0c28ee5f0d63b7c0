"""`pipeline.report`: an HTML report with PNG plots rendered from a tiny pipeline run."""
import json
import os
import re

import pytest

from modules import masks as masks_lib
from modules import pruning
from pipeline import report

pytestmark = pytest.mark.e2e

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tiny_run):
    """The shared tiny run as it was before test_pipeline_e2e reran it."""
    return {**tiny_run["pristine"], "root": str(tiny_run["pristine"]["root"])}


def _quality_json(path):
    """A quality file in the format `benchmarks.quality` writes (numbers made up)."""
    arms = {}
    for i, arm in enumerate(("dense_single_task", "hard_sharing", "lt4rec")):
        arms[arm] = {m: {"mean": 0.61 + 0.0123 * i + 0.001 * j, "std": 0.0031 + 0.001 * j,
                         "values": [0.6, 0.62, 0.63]}
                     for j, m in enumerate(("ctr", "cvr", "ctcvr"))}
    diff = {m: {"mean": 0.0123, "std": 0.002, "lt4rec_better_in": 3, "seeds": 3}
            for m in ("ctr", "cvr", "ctcvr")}
    data = {"seeds": [42, 43, 44], "metrics": ["ctr", "cvr", "ctcvr"], "arms": arms,
            "differences": {"lt4rec_minus_hard_sharing": diff}, "train_rows": 640,
            "eval_rows": 160, "run_root": "elsewhere"}
    path.write_text(json.dumps(data))
    return data


@pytest.fixture(scope="module")
def rendered(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    quality = _quality_json(out / "quality-input.json")
    assert report.main(["--root", run["root"], "--out", str(out / "html"),
                        "--quality", str(out / "quality-input.json")]) == 0
    page = (out / "html" / "index.html").read_text(encoding="utf-8")
    return {"dir": out / "html", "page": page, "quality": quality}


def test_every_image_is_an_existing_png(rendered):
    images = re.findall(r'<img src="([^"]+)"', rendered["page"])
    assert {"pruning_curves.png", "mask_density.png", "mask_overlap.png", "auc_comparison.png",
            "tfma_slices.png"} <= set(images)
    for name in images:
        path = rendered["dir"] / name
        assert path.is_file(), name
        assert path.read_bytes()[:8] == PNG_MAGIC, name
        assert path.stat().st_size > 5000, name


def test_report_shows_the_run_numbers(run, rendered):
    page, result = rendered["page"], run["summary"]
    for task in ("ctr", "cvr"):
        for key in ("dense_auc", "ticket_auc", "mtl_auc", "density"):
            assert f"{result[task][key]:.4f}" in page, (task, key)
        for stage, value in result[task]["validation_auc"].items():
            assert f"{value:.4f}" in page, (task, stage)
    assert f"{result['ctcvr_auc']:.4f}" in page
    assert f"{result['overlap']['jaccard']:.4f}" in page
    assert result["pushed_model"] in page


def test_report_shows_the_data_checks(rendered):
    assert "<h2>Data checks</h2>" in rendered["page"]
    assert "<p>Rows read: 800; dropped for failing the schema's row checks: 0.</p>" \
        in rendered["page"]


def test_report_shows_the_negative_transfer_guard_per_task(run, rendered):
    page = rendered["page"]
    section = page[page.index("Negative transfer"):]
    for task in ("ctr", "cvr"):
        guard = run["summary"][task]["negative_transfer"]
        row = section[section.index(f"<td>{task.upper()}</td>"):]
        row = row[:row.index("</tr>")]
        for key in ("mtl_validation_auc", "ticket_validation_auc", "ticket_eval_auc"):
            assert f"{guard[key]:.4f}" in row, (task, key)
        assert f"<td>{guard['served_by']}</td>" in row
        assert f"<td>{'yes' if guard['mtl_lost'] else 'no'}</td>" in row


def test_report_shows_every_pruning_round_and_the_mask_densities(run, rendered):
    page = rendered["page"]
    masks_uri = run["outputs"]["TicketSearch"]["masks"][0].uri
    with open(os.path.join(masks_uri, "ticket_report.json"), encoding="utf-8") as f:
        ticket = json.load(f)
    for task in ("ctr", "cvr"):
        for r in ticket["tasks"][task]["rounds"]:
            assert f"{r['validation_auc']:.4f}" in page and f"{r['eval_auc']:.4f}" in page
    for task, masks in masks_lib.load(masks_uri).items():
        for mask in masks:
            assert f"{mask.mean():.4f}" in page
        assert f"{pruning.density(masks):.4f}" in page


def test_report_shows_the_tfma_slices(run, rendered):
    import tensorflow_model_analysis as tfma
    result = tfma.load_eval_result(run["outputs"]["Evaluator"]["evaluation"][0].uri)
    page = rendered["page"]
    for slice_key, metrics in result.slicing_metrics:
        auc = metrics["ctr"][""]["auc"]["doubleValue"]
        assert f"{auc:.4f}" in page
        if slice_key:
            ((name, value),) = slice_key
            assert f"{name} = {value}" in page


def test_report_shows_the_quality_comparison(rendered):
    page, quality = rendered["page"], rendered["quality"]
    for arm in ("dense_single_task", "hard_sharing", "lt4rec"):
        for metric in ("ctr", "cvr", "ctcvr"):
            entry = quality["arms"][arm][metric]
            assert f"{entry['mean']:.4f} ± {entry['std']:.4f}" in page
    assert "+0.0123 ± 0.0020 (3/3 seeds)" in page


def test_report_without_quality_json_says_how_to_make_one(run, tmp_path):
    index = report.render(run["root"], str(tmp_path))
    page = open(index, encoding="utf-8").read()
    assert "benchmarks.quality" in page and "auc_comparison.png" not in page


def test_report_of_an_empty_root_fails_cleanly(tmp_path, capsys):
    assert report.main(["--root", str(tmp_path)]) == 1
    assert "no pipeline run" in capsys.readouterr().err
