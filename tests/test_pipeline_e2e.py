"""The whole pipeline on tiny synthetic data with LocalDagRunner: lineage, gate, push, serving."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from conftest import tiny_pipeline_config
from modules import data, features, tasks
from pipeline import local_runner, serving, summary

pytestmark = pytest.mark.e2e

NODES = ("ImportExampleGen", "ImportSchemaGen", "StatisticsGen", "StrictExampleValidator",
         "Transform", "TicketSearch", "MTLTrainer", "Evaluator", "AtomicPusher")


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run


def test_every_component_ran_and_mlmd_holds_the_lineage(run):
    outputs, layout = run["outputs"], run["layout"]
    assert set(NODES) <= set(outputs)
    store = metadata_store.MetadataStore(layout.connection())
    model = outputs["MTLTrainer"]["model"][0]
    producer = [e for e in store.get_events_by_artifact_ids([model.id])
                if e.type == metadata_store_pb2.Event.OUTPUT][0].execution_id
    inputs = {store.get_artifacts_by_id([e.artifact_id])[0].type
              for e in store.get_events_by_execution_ids([producer])
              if e.type == metadata_store_pb2.Event.INPUT}
    assert {"components.TaskMasks", "TransformGraph", "Examples", "Schema"} <= inputs
    masks = outputs["TicketSearch"]["masks"][0]
    assert masks.custom_properties["ctr_density"].double_value == pytest.approx(
        run["summary"]["ctr"]["density"])


def test_model_is_blessed_and_pushed_atomically(run):
    result = run["summary"]
    assert result["blessed"] is True
    pushed = result["pushed_model"]
    assert pushed and os.path.dirname(pushed) == run["layout"].serving_dir
    assert os.path.exists(os.path.join(pushed, "saved_model.pb"))
    assert [n for n in os.listdir(run["layout"].serving_dir)] == [os.path.basename(pushed)]


def test_summary_json_has_the_documented_keys(run):
    on_disk = json.loads(open(run["layout"].summary_path).read())
    for task in ("ctr", "cvr"):
        assert {"dense_auc", "ticket_auc", "mtl_auc", "density"} <= set(on_disk[task])
        assert 0.0 < on_disk[task]["density"] <= 1.0
        assert 0.0 <= on_disk[task]["mtl_auc"] <= 1.0
    assert {"overlap", "blessed", "pushed_model"} <= set(on_disk)
    assert 0.0 <= on_disk["overlap"]["jaccard"] <= 1.0


def _raw_examples(data_dir):
    files = sorted(tf.io.gfile.glob(os.path.join(str(data_dir), "*")))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _odd_example():
    """Unseen ids everywhere, empty multi-valued lists, no labels."""
    example = tf.train.Example()
    for name in features.SINGLE_VALUED:
        example.features.feature[name].bytes_list.value.append(b"never-seen-" + name.encode())
    for name in features.MULTI_VALUED:
        example.features.feature[name].bytes_list.value[:] = []
    return example.SerializeToString()


@pytest.mark.parametrize("batch", [1, 256])
def test_pushed_model_serves_predict_requests_like_tf_serving(run, batch):
    session = serving.ServingSession(run["layout"].serving_dir)
    examples = (_raw_examples(run["data"]) * 2)[:batch - 1] + [_odd_example()]
    response = session.predict(serving.make_request(examples))
    outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
    assert set(outputs) == {"ctr", "cvr", "ctcvr"}
    for value in outputs.values():
        assert value.shape == (batch,)
        assert np.all((value >= 0) & (value <= 1)) and np.all(np.isfinite(value))
    np.testing.assert_allclose(outputs["ctcvr"], outputs["ctr"] * outputs["cvr"], rtol=1e-6)


def test_serving_path_reproduces_the_in_pipeline_evaluation(run):
    """Raw examples -> pushed SavedModel gives the AUCs the trainer measured on transformed data."""
    outputs = run["outputs"]
    examples_uri = outputs["ImportExampleGen"]["examples"][0].uri
    raw = [r.numpy() for r in tf.data.TFRecordDataset(
        data.split_files(examples_uri, "eval"), compression_type="GZIP")]
    scores = serving.ServingSession(run["summary"]["pushed_model"]).score(raw)
    parsed = [tf.train.Example.FromString(r) for r in raw]
    label = np.array([p.features.feature["label"].int64_list.value[0] for p in parsed])
    cvrlabel = np.array([p.features.feature["cvrlabel"].float_list.value[0] for p in parsed])
    arrays = {features.LABEL: label, features.CONVERSION: (
        (label == 1) & (cvrlabel >= run["config"].data.cvr_threshold)).astype(np.float32)}
    for task in ("ctr", "cvr"):
        assert tasks.auc(task, arrays, scores[task]) == pytest.approx(
            run["summary"][task]["mtl_auc"], abs=1e-6)


def test_predict_command_scores_a_tfrecord_file(run, tmp_path):
    from pipeline import cli
    out = tmp_path / "scores.jsonl"
    pattern = os.path.join(str(run["data"]), "*")
    assert cli.main(["predict", "--model", run["layout"].serving_dir, "--data", pattern,
                     "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 800 and set(rows[0]) == {"ctr", "cvr", "ctcvr"}


def test_unreachable_gate_blesses_nothing_and_pushes_nothing(run):
    config = tiny_pipeline_config(evaluation={"ctr_auc_lower_bound": 0.999})
    before = sorted(os.listdir(run["layout"].serving_dir))
    outputs = local_runner.run(str(run["data"]), str(run["root"]), config)
    result = summary.build(outputs, run["layout"], config)
    assert result["blessed"] is False
    assert result["pushed_model"] is None
    assert sorted(os.listdir(run["layout"].serving_dir)) == before
    pushed = outputs["AtomicPusher"]["pushed_model"][0]
    assert pushed.custom_properties["pushed"].int_value == 0
    # Only the gate changed: everything up to the trainer came from TFX's cache.
    states = _latest_states(run["layout"])
    for node in ("Transform", "TicketSearch", "MTLTrainer"):
        assert states[node] == metadata_store_pb2.Execution.CACHED, node
    assert states["Evaluator"] == metadata_store_pb2.Execution.COMPLETE


def _latest_states(layout):
    store = metadata_store.MetadataStore(layout.connection())
    states = {}
    for context in store.get_contexts_by_type("node"):
        executions = store.get_executions_by_context(context.id)
        if executions:
            latest = max(executions, key=lambda e: e.id)
            states[context.name.split(".", 1)[1]] = latest.last_known_state
    return states


def test_masks_are_baked_into_the_exported_per_task_kernels(run):
    from modules import masks as masks_lib
    ticket_masks = masks_lib.load(run["outputs"]["TicketSearch"]["masks"][0].uri)
    loaded = tf.saved_model.load(run["summary"]["pushed_model"])
    for task in ("ctr", "cvr"):
        for mask, kernel in zip(ticket_masks[task], loaded.task_kernels[task]):
            value = kernel.numpy()
            assert np.all(value[~mask] == 0.0)
            assert np.count_nonzero(value[mask]) == int(mask.sum())
