"""The compiled Kubeflow spec, run end to end through the open-source backend's emulation, twice,
with a third task beside the LT4REC two (N tasks need nothing Kubeflow-specific).

Run 1 trains, blesses (its baseline is the candidate itself: evaluated once) and pushes; new
files then land under the same data root; run 2 (caching on, as compiled) re-reads the examples,
is gated against run 1's pushed model and pushes a second version. Then the same harness shows
why the repairs are needed: TFX's own entrypoint fails on what the backend sends.
"""
import copy
import glob
import json
import os
import shutil

import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma

from conftest import tiny_pipeline_config
from components.baseline_model.executor import IS_CANDIDATE, SOURCE
from kubeflow import backend_emulator, entrypoint, runner, submit
from kubeflow.backend_emulator import Backend, TaskFailed
from pipeline import serving, synthetic_data
from modules.config import Config
from pipeline.pipeline import SCHEMA_PATH

pytestmark = pytest.mark.e2e

NEW_ROWS = 300
# Watched to the end, on the clicked rows.
FINISH = {"name": "finish", "label": "cvrlabel >= 0.99", "rows": "label", "loss": "bce"}


def _config(root):
    # One pruning round, one epoch per training: this test is about orchestration, not quality.
    config = json.loads(tiny_pipeline_config(
        ticket={"rounds": 1, "stopping": {"max_epochs": 1}},
        mtl={"stopping": {"max_epochs": 1}}).to_json())
    config["kubeflow"].update({
        "image": "lt4rec-tfx:ci", "pipeline_root": str(root / "pipeline_root"),
        "data_root": str(root / "data"), "serving_dir": str(root / "serving"),
        "statistics_dir": str(root / "statistics"), "schema_path": SCHEMA_PATH, "trainer_gpus": 0,
        "beam_pipeline_args": config["beam_pipeline_args"],
        "infra_validation": False})                   # no Kubernetes API to start TF Serving
    config["spec"]["tasks"].append(FINISH)
    return Config.from_dict(config)


def _count_examples(examples_uri):
    files = glob.glob(os.path.join(examples_uri, "Split-*", "*.gz"))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("kfp_backend")
    synthetic_data.write_dataset(str(root / "data"), rows=800, seed=11)
    config = _config(root)
    job = runner.compile_spec(config, str(root), "lt4rec_pipeline.json")
    package, _ = submit.kfp_package(job, str(root), config.kubeflow)
    backend = Backend(str(root / "backend"))
    first = backend.run(package, config.kubeflow.pipeline_root, run_id="run-1")
    first_versions = sorted(os.listdir(root / "serving"))
    synthetic_data.write_dataset(str(root / "new"), rows=NEW_ROWS, seed=12)
    (new_file,) = glob.glob(str(root / "new" / "*.gz"))
    shutil.copy(new_file, root / "data" / "day-2.tfrecord.gz")
    second = backend.run(package, config.kubeflow.pipeline_root, run_id="run-2")
    return {"root": root, "package": package, "backend": backend, "config": config,
            "first": first, "second": second, "first_versions": first_versions}


def _outputs(run, task):
    return run[task]["outputs"]


def test_first_run_evaluates_the_candidate_once_blesses_and_pushes_it(runs):
    first = runs["first"]
    assert {r["state"] for r in first.values()} == {"COMPLETE"}
    baseline = _outputs(first, "BaselineModel")["baseline_model"]
    assert baseline["metadata"][IS_CANDIDATE] == 1
    evaluation = _outputs(first, "Evaluator")["evaluation"]["uri"]
    keys = [kv.key for m in tfma.load_metrics(evaluation) for kv in m.metric_keys_and_values]
    assert keys and {k.model_name for k in keys} == {""}       # the candidate alone
    assert _outputs(first, "Evaluator")["blessing"]["metadata"]["blessed"] == 1
    assert _outputs(first, "AtomicPusher")["pushed_model"]["metadata"]["pushed"] == 1
    assert len(runs["first_versions"]) == 1


def test_a_rerun_on_new_files_reads_them_instead_of_cached_examples(runs):
    first, second = runs["first"], runs["second"]
    for task in runner.NEVER_CACHED_ON_KUBEFLOW:
        assert second[task]["state"] == "COMPLETE", task
    # With caching on, the backend's key would have served yesterday's examples: it is the same.
    assert second["ImportExampleGen"]["cache_key"] == first["ImportExampleGen"]["cache_key"]
    examples = [_outputs(run, "ImportExampleGen")["examples"] for run in (first, second)]
    assert [_count_examples(e["uri"]) for e in examples] == [800, 800 + NEW_ROWS]
    # ExampleGen's driver ran in the pod (the backend skips its pre-cache hook).
    # (TFX's artifact-to-metadata translation stores span as a custom property.)
    assert [e["metadata"]["custom:span"] for e in examples] == [0, 0]
    fingerprints = [e["metadata"]["input_fingerprint"] for e in examples]
    assert "num_files:1" in fingerprints[0] and "num_files:2" in fingerprints[1]
    # Everything downstream saw new input artifacts, so nothing stale came from the cache.
    assert {r["state"] for r in second.values()} == {"COMPLETE"}


def test_second_run_is_gated_against_the_first_runs_model_and_pushed(runs):
    serving_dir = runs["root"] / "serving"
    first_push = str(serving_dir / runs["first_versions"][0])
    baseline = _outputs(runs["second"], "BaselineModel")["baseline_model"]
    assert baseline["metadata"][IS_CANDIDATE] == 0
    assert baseline["metadata"][SOURCE] == first_push
    evaluation = _outputs(runs["second"], "Evaluator")["evaluation"]["uri"]
    overall = [m for m in tfma.load_metrics(evaluation) if not m.slice_key.single_slice_keys]
    aucs = {(kv.key.model_name, kv.key.output_name, kv.key.is_diff)
            for m in overall for kv in m.metric_keys_and_values if kv.key.name == "auc"}
    for task in ("ctr", "cvr", "finish"):   # the change threshold had a baseline to compare with
        assert {("baseline", task, False), ("candidate", task, True)} <= aucs, aucs
    assert _outputs(runs["second"], "Evaluator")["blessing"]["metadata"]["blessed"] == 1
    versions = sorted(os.listdir(serving_dir), key=int)
    assert versions[:1] == runs["first_versions"] and len(versions) == 2
    session = serving.ServingSession(str(serving_dir))
    assert session.path == str(serving_dir / versions[-1])
    records = list(tf.data.TFRecordDataset(
        glob.glob(str(runs["root"] / "data" / "*.gz")), compression_type="GZIP").take(5))
    scores = session.score([r.numpy() for r in records])
    assert set(scores) == {"ctr", "cvr", "finish", "ctcvr"} and len(scores["finish"]) == 5


def _spec_with_tfx_entrypoint(package, task):
    spec, _ = backend_emulator.load_package(package)
    spec = copy.deepcopy(spec)
    label = spec["components"][spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]][
        "executorLabel"]
    spec["deploymentSpec"]["executors"][label]["container"]["command"] = [
        "python", "-m", entrypoint.TFX_ENTRYPOINT]
    return spec


def test_tfx_entrypoint_fails_on_the_untyped_inputs_the_backend_sends(runs, tmp_path):
    spec = _spec_with_tfx_entrypoint(runs["package"], "StatisticsGen")
    backend = Backend(str(tmp_path), publish_logs=False)
    with pytest.raises(TaskFailed, match="(?s)StatisticsGen.*'NoneType' object has no attribute 'get'"):
        backend.run_task(spec, "StatisticsGen", str(tmp_path / "root"), "r", runs["first"])


def test_tfx_entrypoint_fails_on_the_executor_logs_output(runs, tmp_path):
    spec = _spec_with_tfx_entrypoint(runs["package"], "ImportSchemaGen")
    with pytest.raises(TaskFailed, match="(?s)ImportSchemaGen.*system"):
        Backend(str(tmp_path)).run_task(spec, "ImportSchemaGen", str(tmp_path / "r"), "r", {})
    # Without log publishing (backends before 2.5.0) the same task runs.
    result = Backend(str(tmp_path), publish_logs=False).run_task(
        spec, "ImportSchemaGen", str(tmp_path / "r"), "r", {})
    assert result["state"] == "COMPLETE"


def test_a_spec_compiled_as_tfx_does_by_default_is_refused(runs, tmp_path):
    """Schema 2.0.0 and the latest-blessed-model resolver: what TFX's defaults produce."""
    from tfx import v1 as tfx
    from components.atomic_pusher.component import AtomicPusher
    resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    pusher = AtomicPusher(model=resolver.outputs["model"], push_destination=tfx.proto.PushDestination(
        filesystem=tfx.proto.PushDestination.Filesystem(base_directory=str(tmp_path / "s"))))
    pipeline = tfx.dsl.Pipeline(pipeline_name="legacy", pipeline_root=str(tmp_path / "root"),
                                components=[resolver, pusher])
    for use_2_1, message in ((False, "schema version 2.1.0, but the pipeline spec has version "
                                     "2.0.0"),
                             (True, "resolver executors not implemented")):
        job = tfx.orchestration.experimental.KubeflowV2DagRunner(
            config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
                default_image="img", use_pipeline_spec_2_1=use_2_1),
            output_dir=str(tmp_path), output_filename="legacy.json").run(pipeline, write_out=False)
        with pytest.raises(backend_emulator.BackendRefusal, match=message):
            Backend(str(tmp_path / "b")).run(job["pipelineSpec"], str(tmp_path / "root"))


@pytest.fixture(scope="module")
def overridden(runs):
    """Run 3 of the same package with run parameters: another data root, an unreachable AUC
    lower bound."""
    root = runs["root"]
    third = runs["backend"].run(runs["package"], runs["config"].kubeflow.pipeline_root,
                                run_id="run-3", parameters={"data_root": str(root / "new"),
                                                            "auc_lower_bound": 0.999})
    return third


def test_a_run_reads_the_data_root_and_gates_by_the_bounds_its_parameters_set(runs, overridden):
    examples = _outputs(overridden, "ImportExampleGen")["examples"]
    assert _count_examples(examples["uri"]) == NEW_ROWS          # only the files under new/
    evaluation = _outputs(overridden, "Evaluator")["evaluation"]["uri"]
    failures = tfma.load_validation_result(evaluation).metric_validations_per_slice
    bounds = {round(f.metric_threshold.value_threshold.lower_bound.value, 3)
              for s in failures for f in s.failures}
    assert bounds == {0.999}                  # every task failed the run's bound, nothing else
    assert _outputs(overridden, "Evaluator")["blessing"]["metadata"]["blessed"] == 0
    assert _outputs(overridden, "AtomicPusher")["pushed_model"]["metadata"]["pushed"] == 0
    assert len(os.listdir(runs["root"] / "serving")) == 2        # runs 1 and 2 only


def test_a_run_reads_the_span_its_parameter_asks_for(tmp_path):
    """In the spans layout, `span` picks the day ExampleGen reads (0: the newest), resolved by
    the driver in the pod (it never reads the other day's files)."""
    synthetic_data.write_spans(str(tmp_path / "data"), 2, rows=200, seed=5)
    config = json.loads(_config(tmp_path).to_json())
    config["data"].update(layout="spans", window_spans=1)
    job = runner.compile_spec(Config.from_dict(config), str(tmp_path), "spans.json")
    spec = json.loads(open(job).read())["pipelineSpec"]
    backend = Backend(str(tmp_path / "backend"))
    read = {}
    for asked in (None, 1):
        result = backend.run_task(spec, "ImportExampleGen", str(tmp_path / "root"), f"r{asked}",
                                  {}, parameters=backend_emulator.run_parameters(
                                      spec, {"span": asked} if asked else {}))
        read[asked] = result["outputs"]["examples"]["metadata"]["custom:span"]
    assert read == {None: 2, 1: 1}
    with pytest.raises(TaskFailed, match=r"(?s)ImportExampleGen.*data' has no span-9 directory "
                                         r"\(spans: \[1, 2\]\)"):
        backend.run_task(spec, "ImportExampleGen", str(tmp_path / "root"), "r9", {},
                         parameters=backend_emulator.run_parameters(spec, {"span": 9}))
