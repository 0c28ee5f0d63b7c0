"""The main job on the default 20k-row synthetic data (marker `slow`: `make test-slow`)."""
import json

import pytest

from pipeline import cli

pytestmark = pytest.mark.slow


def test_main_job_beats_chance_clearly_and_pushes(tmp_path, capsys):
    assert cli.main(["run", "--root", str(tmp_path)]) == 0
    print(capsys.readouterr().out)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for task in ("ctr", "cvr"):
        assert summary[task]["ticket_auc"] > 0.6, summary[task]
        assert summary[task]["mtl_auc"] > 0.6, summary[task]
        assert summary[task]["density"] < 1.0
    assert summary["blessed"] is True and summary["pushed_model"]
