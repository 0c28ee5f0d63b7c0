"""Both trainers on two logical CPU replicas match one replica (the GPU path, without a GPU)."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.long    # two trainings under MirroredStrategy: ~4 minutes


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    script = os.path.join(os.path.dirname(__file__), "multi_replica_check.py")
    out = subprocess.run([sys.executable, script, str(tmp_path_factory.mktemp("replicas"))],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_replicas_split_the_global_batch(results):
    assert results["one"]["replicas"] == 1 and results["one"]["per_replica_batch"] == [128]
    assert results["two"]["replicas"] == 2 and results["two"]["per_replica_batch"] == [64, 64]


def test_two_replicas_find_the_same_tickets_within_tolerance(results):
    for task, agreement in results["mask_agreement"].items():
        assert agreement > 0.98, task
    for task, rounds in results["one"]["rounds"].items():
        assert rounds == pytest.approx(results["two"]["rounds"][task], abs=0.02)


def test_two_replicas_stop_early_at_the_same_points(results):
    assert results["one"]["round_epochs"] == results["two"]["round_epochs"]
    assert results["one"]["mtl_epochs"] == results["two"]["mtl_epochs"]


def test_two_replicas_train_the_same_mtl_model_within_tolerance(results):
    assert results["one"]["mtl"] == pytest.approx(results["two"]["mtl"], abs=0.02)
