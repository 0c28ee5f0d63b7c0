"""SIGKILL during each trainer, then rerun: cache reuse, no partial artifact used, model pushed.

The scenario itself (runs A, B killed; run C completes) is the session fixture `recovered_run`.
"""
import glob
import os
import signal

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import serving
from reliability import helpers

pytestmark = pytest.mark.e2e

UPSTREAM = ("ImportExampleGen", "ImportSchemaGen", "StatisticsGen", "StrictExampleValidator",
            "Transform")
State = metadata_store_pb2.Execution


@pytest.fixture(scope="module")
def runs(recovered_run):
    runs = helpers.executions_by_run(recovered_run["metadata"])
    assert len(runs) == 3, "expected the killed run A, the killed rerun B and the rerun C"
    return runs


def test_the_runs_were_killed_and_the_last_rerun_succeeded(recovered_run):
    assert recovered_run["exit_codes"] == (-signal.SIGKILL, -signal.SIGKILL, 0), \
        recovered_run["log"][-3000:]


@pytest.mark.parametrize("run_index, node, partial_key", [
    (0, "TicketSearch", "killed_ticket_search"),
    (1, "MTLTrainer", "killed_trainer"),
])
def test_killed_trainer_execution_never_completed_and_published_nothing(
        recovered_run, runs, run_index, node, partial_key):
    killed = runs[run_index][node]
    assert killed.last_known_state == State.RUNNING       # never marked COMPLETE
    assert helpers.events(recovered_run["metadata"], killed, "OUTPUT") == {}
    # The kill hit mid-work: the execution had already written part of its output ...
    killed_dirs = glob.glob(os.path.join(str(recovered_run["root"]), "pipeline", node, "*",
                                         str(killed.id)))
    assert any(recovered_run[partial_key].startswith(d + os.sep) for d in killed_dirs)
    # ... and no artifact anywhere in MLMD points into it.
    assert not [uri for uri in helpers.all_artifact_uris(recovered_run["metadata"])
                if any(uri == d or uri.startswith(d + os.sep) for d in killed_dirs)]


def test_reruns_take_upstream_results_from_the_cache(recovered_run, runs):
    run_a, run_b, run_c = runs
    for node in UPSTREAM:
        assert run_a[node].last_known_state == State.COMPLETE, node
        assert run_b[node].last_known_state == State.CACHED, node
        assert run_c[node].last_known_state == State.CACHED, node
        original = helpers.events(recovered_run["metadata"], run_a[node], "OUTPUT")
        for rerun in (run_b, run_c):
            reused = helpers.events(recovered_run["metadata"], rerun[node], "OUTPUT")
            assert {k: [a.id for a in v] for k, v in reused.items()} == \
                {k: [a.id for a in v] for k, v in original.items()}, node
    # TicketSearch completed in run B, so run C takes it from the cache too.
    assert run_b["TicketSearch"].last_known_state == State.COMPLETE
    assert run_c["TicketSearch"].last_known_state == State.CACHED
    assert run_c["MTLTrainer"].last_known_state == State.COMPLETE


def test_downstream_uses_only_completed_executions_outputs(recovered_run, runs):
    metadata = recovered_run["metadata"]
    _, run_b, run_c = runs
    masks = helpers.events(metadata, run_b["TicketSearch"], "OUTPUT")["masks"][0]
    trainer_inputs = helpers.events(metadata, run_c["MTLTrainer"], "INPUT")
    assert [a.id for a in trainer_inputs["masks"]] == [masks.id]
    model = helpers.events(metadata, run_c["MTLTrainer"], "OUTPUT")["model"][0]
    for node in ("Evaluator", "AtomicPusher"):
        assert run_c[node].last_known_state == State.COMPLETE, node
        assert [a.id for a in helpers.events(metadata, run_c[node], "INPUT")["model"]] == \
            [model.id], node


def test_rerun_pushed_one_complete_version_that_serves(recovered_run, runs):
    serving_dir = recovered_run["serving_dir"]
    versions = os.listdir(serving_dir)
    assert len(versions) == 1 and versions[0].isdigit(), versions   # no .incomplete-* left
    pushed = helpers.events(recovered_run["metadata"], runs[2]["AtomicPusher"], "OUTPUT")
    destination = pushed["pushed_model"][0].custom_properties["pushed_destination"].string_value
    assert destination == os.path.join(serving_dir, versions[0])
    scores = serving.ServingSession(serving_dir).score(
        [e.SerializeToString() for e in helpers.read_examples(recovered_run["data"])[:32]])
    assert all(((v >= 0) & (v <= 1)).all() for v in scores.values())
