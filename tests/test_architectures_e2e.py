"""Every architecture without tickets through the whole pipeline on tiny data: no TicketSearch,
the model blessed, pushed and served like the LT4REC one (`test_pipeline_e2e` runs LT4REC)."""
import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_pipeline_config
from pipeline import local_runner, report, serving, summary, synthetic_data

pytestmark = pytest.mark.e2e

EXPERTS = {"shared": 2, "per_task": 1, "levels": 2, "units": [16, 8], "tower_units": [8]}


@pytest.fixture(scope="module", params=["shared_bottom", "mmoe", "ple"])
def run(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    data_dir = root / "data"
    synthetic_data.write_dataset(str(data_dir), rows=800, seed=11)
    config = tiny_pipeline_config(mtl={"architecture": request.param, "experts": EXPERTS,
                                       "stopping": {"max_epochs": 3}})
    outputs = local_runner.run(str(data_dir), str(root), config)
    layout = local_runner.RunLayout(str(root))
    return {"architecture": request.param, "root": root, "data": data_dir, "outputs": outputs,
            "layout": layout, "summary": summary.build(outputs, layout, config)}


def test_no_ticket_search_runs_and_the_model_is_blessed_and_pushed(run):
    assert "TicketSearch" not in run["outputs"] and "MTLTrainer" in run["outputs"]
    result = json.loads(open(run["layout"].summary_path).read())
    assert result["architecture"] == run["architecture"]
    assert f"mtl.architecture: {run['architecture']}" in summary.render(run["summary"])
    assert result["blessed"] is True and result["pushed_model"]
    for task in ("ctr", "cvr"):      # 800 rows, ~70 clicked: no quality bar, only the lineage
        assert result[task]["ticket_auc"] is None and 0.0 <= result[task]["mtl_auc"] <= 1.0


def test_the_pushed_model_serves_ctr_cvr_and_ctcvr(run):
    session = serving.ServingSession(run["layout"].serving_dir)
    files = sorted(tf.io.gfile.glob(str(run["data"] / "*")))
    examples = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")][:64]
    response = session.predict(serving.make_request(examples))
    outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
    assert set(outputs) == {"ctr", "cvr", "ctcvr"}
    assert all(v.shape == (64,) and np.all((v > 0) & (v < 1)) for v in outputs.values())
    np.testing.assert_allclose(outputs["ctcvr"], outputs["ctr"] * outputs["cvr"], rtol=1e-6)


def test_the_report_shows_the_run_without_ticket_sections(run, tmp_path):
    path = report.render(str(run["root"]), str(tmp_path))
    text = open(path).read()
    assert run["architecture"] in text and "Pruning curves" not in text
    assert "Mask density" not in text
