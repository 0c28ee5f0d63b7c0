"""The tfx CLI's local engine runs the pipeline: `tfx pipeline create` + `tfx run create`."""
import os
import subprocess
import sys

import pytest

from conftest import tiny_pipeline_config
from pipeline import mlmd

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)


def test_tfx_cli_local_engine_runs_the_tiny_pipeline(tmp_path):
    """...and leaves nothing in the temp directory (no ephemeral TFX sdist per Beam component)."""
    config = tiny_pipeline_config(data={"synthetic_rows": 400},
                                  ticket={"rounds": 1, "stopping": {"max_epochs": 1}},
                                  mtl={"stopping": {"max_epochs": 1}})
    (tmp_path / "config.json").write_text(config.to_json())
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
               LOCAL_HOME=str(tmp_path / "home"), LT4REC_CONFIG=str(tmp_path / "config.json"),
               LT4REC_ROOT=str(tmp_path / "root"), TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    tfx = os.path.join(VENV_BIN, "tfx")
    create = subprocess.run([tfx, "pipeline", "create", "--engine=local",
                             "--pipeline_path=pipeline/local_runner.py"],
                            cwd=REPO, env=env, capture_output=True, text=True)
    assert create.returncode == 0, create.stderr[-3000:]
    assert 'Pipeline "lt4rec" created successfully' in create.stdout
    run = subprocess.run([tfx, "run", "create", "--engine=local", "--pipeline_name=lt4rec"],
                         cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    outputs = mlmd.latest_outputs(mlmd.connection_config(str(tmp_path / "root" /
                                                             "metadata.sqlite")), "lt4rec")
    assert {"Transform", "TicketSearch", "MTLTrainer", "BaselineModel", "Evaluator",
            "AtomicPusher"} <= set(outputs)
    assert os.listdir(tmp_path / "root" / "serving")
    assert not list((tmp_path / "tmp").glob("*/build/tfx")), "TFX built an ephemeral sdist"
