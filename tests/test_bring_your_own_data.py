"""The README's "Bring your own data" commands, run as they are: a CSV with three tasks and a
product converted, its schema inferred, the whole pipeline run (three tickets, the three-way
overlap, blessed and pushed), the report rendered and the pipeline compiled for Kubeflow."""
import glob
import json
import os
import re
import shlex

import pytest
import tensorflow as tf

from pipeline import cli, serving

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = "<!-- byod-commands"


def readme_commands():
    """The `lt4rec` lines of the README's bring-your-own-data block."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    block = text[text.index(MARKER):]
    block = block[block.index("```bash\n") + 8:]
    block = block[:block.index("```")]
    return [shlex.split(line) for line in block.splitlines() if line.startswith("lt4rec ")]


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    """Every README command's exit code, run from a directory holding `examples/`."""
    work = tmp_path_factory.mktemp("byod")
    os.symlink(os.path.join(ROOT, "examples"), work / "examples")
    before = os.getcwd()
    os.chdir(work)
    try:
        codes = [(" ".join(args[:2]), cli.main(args[1:])) for args in readme_commands()]
    finally:
        os.chdir(before)
    return {"dir": work, "codes": codes}


def test_the_readme_block_is_convert_schema_run_report_compile():
    assert [args[1] for args in readme_commands()] == ["convert", "schema", "run", "report",
                                                      "kubeflow"]


def test_every_readme_command_succeeds(walked):
    assert walked["codes"] == [(name, 0) for name, _ in walked["codes"]]


def test_three_tickets_a_product_blessed_and_pushed(walked):
    with open(walked["dir"] / "feed" / "run" / "summary.json", encoding="utf-8") as f:
        summary = json.load(f)
    assert summary["outputs"]["tasks"] == ["click", "like", "finish"]
    assert summary["overlap"]["tasks"] == ["click", "like", "finish"]
    assert len(summary["overlap"]["pairwise"]["jaccard"]) == 3
    for task in ("click", "like", "finish"):
        assert 0 < summary[task]["density"] <= 1 and summary[task]["mtl_auc"] > 0.5, task
    assert summary["click_like_auc"] is not None
    assert sorted(summary["gates"]) == ["click", "finish", "like"]       # tasks, not the product
    assert summary["blessed"] is True and summary["pushed_model"]
    records = tf.data.TFRecordDataset(glob.glob(str(walked["dir"] / "feed" / "data" / "*.gz")),
                                      compression_type="GZIP").take(3)
    scores = serving.ServingSession(summary["pushed_model"]).score([r.numpy() for r in records])
    assert set(scores) == {"click", "like", "finish", "click_like"} and len(scores["like"]) == 3


def test_the_report_shows_the_three_way_overlap(walked):
    page = (walked["dir"] / "feed" / "run" / "report" / "index.html").read_text(encoding="utf-8")
    assert "mask_overlap_matrix.png" in page and "mask_maps.png" not in page
    for task in ("CLICK", "LIKE", "FINISH", "CLICK_LIKE"):
        assert re.search(rf"\b{task}\b", page), task


def test_the_compiled_kubeflow_pipeline_carries_the_spec(walked):
    with open(walked["dir"] / "feed" / "pipeline.json", encoding="utf-8") as f:
        compiled = json.load(f)
    trainer = json.dumps(compiled["pipelineSpec"]["root"]["dag"]["tasks"]["MTLTrainer"])
    assert "watch_ratio >= 0.9" in trainer and "click_like" in trainer
