"""The compiled Kubeflow spec on an S3-compatible store, through the open-source backend's
emulation, twice, against a local S3 server (moto's server mode on 127.0.0.1).

Run 1's pipeline root has stock KFP's scheme (`minio://<bucket>/v2/artifacts`), run 2's is
s3:// (a run's pipeline root is a run-time setting); data, serving and statistics locations are
s3://. Every artifact is written and read at its URI through S3; the
pods get the endpoint from the compiled spec and their credentials from a Kubernetes secret
(the package's platform spec). Run 2 reads new files, is gated against run 1's push (found on
S3) and pushes a second version, which a fresh process loads from S3 and scores.

The pytest process itself never registers TensorFlow's s3:// filesystem (tensorflow-io's client
aborts at interpreter exit, modules/filesystems.py): it checks S3 through boto3, and loads models
in a subprocess.
"""
import glob
import json
import subprocess
import sys

import pytest
import tensorflow as tf

from conftest import S3_KEYS, s3_process_env, tiny_pipeline_config
from components.baseline_model.executor import IS_CANDIDATE, SOURCE
from kubeflow import backend_emulator, runner, submit
from kubeflow.backend_emulator import Backend, TaskFailed
from modules.config import Config
from pipeline import synthetic_data
from pipeline.pipeline import SCHEMA_PATH

pytestmark = pytest.mark.e2e

BUCKET = "lt4rec-ci"
SECRET = "mlpipeline-minio-artifact"        # where stock KFP keeps its MinIO's keys
SECRETS = {SECRET: {"accesskey": S3_KEYS["aws_access_key_id"],
                    "secretkey": S3_KEYS["aws_secret_access_key"]}}
ROOT = f"minio://{BUCKET}/v2/artifacts"
ROOTS = {"first": ROOT, "second": f"s3://{BUCKET}/v2/artifacts"}
SERVING = f"s3://{BUCKET}/serving"
NEW_ROWS = 300
_SCORE = """
import json, sys
from modules import filesystems
filesystems.register_s3()
from pipeline import serving
session = serving.ServingSession(sys.argv[1])
scores = session.score([bytes.fromhex(h) for h in json.loads(sys.argv[2])])
print(json.dumps({"path": session.path, "scores": {k: v.reshape(-1).tolist()
                                                   for k, v in scores.items()}}))
filesystems.exit_skipping_native_teardown(0)
"""


def _config(endpoint):
    # One pruning round, one epoch per training: this test is about storage, not quality.
    config = json.loads(tiny_pipeline_config(
        ticket={"rounds": 1, "stopping": {"max_epochs": 1}},
        mtl={"stopping": {"max_epochs": 1}}).to_json())
    config["kubeflow"].update({
        "image": "lt4rec-tfx:ci", "pipeline_root": ROOT, "data_root": f"s3://{BUCKET}/data",
        "serving_dir": SERVING, "statistics_dir": f"s3://{BUCKET}/statistics",
        "schema_path": SCHEMA_PATH, "trainer_gpus": 0,
        "beam_pipeline_args": config["beam_pipeline_args"],
        "s3_endpoint": endpoint, "s3_secret": SECRET,
        "infra_validation": False})                   # no Kubernetes API to start TF Serving
    return Config.from_dict(config)


def _keys(client, prefix):
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _key(uri):
    return uri.split(f"{BUCKET}/", 1)[1]


def _versions(client):
    return sorted({k.split("/")[1] for k in _keys(client, "serving/")
                   if k.split("/")[1].isdigit()}, key=int)


@pytest.fixture(scope="module")
def runs(s3_server, tmp_path_factory):
    endpoint, client = s3_server
    client.create_bucket(Bucket=BUCKET)
    root = tmp_path_factory.mktemp("kfp_s3")
    synthetic_data.write_dataset(str(root / "data"), rows=800, seed=11)
    synthetic_data.write_dataset(str(root / "new"), rows=NEW_ROWS, seed=12)
    (first_file,), (new_file,) = (glob.glob(str(root / d / "*.gz")) for d in ("data", "new"))
    client.upload_file(first_file, BUCKET, "data/day-1.tfrecord.gz")
    config = _config(endpoint)
    job = runner.compile_spec(config, str(root), "lt4rec_pipeline.json")
    package, _ = submit.kfp_package(job, str(root), config.kubeflow)
    backend = Backend(str(root / "backend"), secrets=SECRETS)
    first = backend.run(package, ROOTS["first"], run_id="run-1")
    first_versions = _versions(client)
    client.upload_file(new_file, BUCKET, "data/day-2.tfrecord.gz")
    second = backend.run(package, ROOTS["second"], run_id="run-2")
    return {"root": root, "package": package, "config": config, "client": client,
            "endpoint": endpoint, "first": first, "second": second,
            "first_versions": first_versions, "records": [
                r.numpy() for r in tf.data.TFRecordDataset(first_file, "GZIP").take(5)]}


def test_the_compiled_pods_get_the_endpoint_and_the_secrets_keys(runs):
    with open(runs["package"], encoding="utf-8") as f:
        text = f.read()
    assert f"--beam_plugin={runner.S3_WORKER_PLUGIN}" in text
    spec, platform = backend_emulator.load_package(runs["package"])
    for executor in spec["deploymentSpec"]["executors"].values():
        env = {e["name"]: e["value"] for e in executor["container"]["env"]}
        assert env["S3_ENDPOINT"] == env["AWS_ENDPOINT_URL"] == runs["endpoint"]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(executors) == len(spec["root"]["dag"]["tasks"])
    assert {json.dumps(e["secretAsEnv"], sort_keys=True) for e in executors.values()} == {
        json.dumps([{"keyToEnv": [{"envVar": "AWS_ACCESS_KEY_ID", "secretKey": "accesskey"},
                                  {"envVar": "AWS_SECRET_ACCESS_KEY", "secretKey": "secretkey"}],
                     "secretName": SECRET}], sort_keys=True)}


def test_every_artifact_of_both_runs_is_written_and_read_on_the_s3_server(runs):
    client = runs["client"]
    for run in ("first", "second"):
        assert {r["state"] for r in runs[run].values()} == {"COMPLETE"}, run
        for task, result in runs[run].items():
            for key, artifact in result["outputs"].items():
                if key == "executor-logs":         # the launcher's own (none written here)
                    continue
                # the backend's scheme is kept in what the launcher records
                assert artifact["uri"].startswith(ROOTS[run] + "/"), (task, key, artifact["uri"])
    examples = [runs[run]["ImportExampleGen"]["outputs"]["examples"]["uri"]
                for run in ("first", "second")]
    counts = [len([k for k in _keys(client, _key(uri) + "/") if k.endswith(".gz")])
              for uri in examples]
    assert min(counts) >= 2, counts                 # a train and an eval file, at least
    model = runs["first"]["MTLTrainer"]["outputs"]["model"]["uri"]
    assert any(k.endswith("saved_model.pb") for k in _keys(client, _key(model) + "/"))
    # no `<dir>/` marker objects, which the launcher would download as files (unlike gs://,
    # kubeflow/entrypoint.py)
    assert not [k for k in _keys(client, "") if k.endswith("/")]
    statistics = runs["first"]["StatisticsGen"]["outputs"]["statistics"]["uri"]
    assert any(k.endswith("FeatureStats.pb") for k in _keys(client, _key(statistics) + "/"))


def test_second_run_is_gated_against_the_first_push_found_on_s3(runs):
    baseline = runs["second"]["BaselineModel"]["outputs"]["baseline_model"]
    assert baseline["metadata"][IS_CANDIDATE] == 0
    assert baseline["metadata"][SOURCE] == f"{SERVING}/{runs['first_versions'][0]}"
    assert runs["second"]["Evaluator"]["outputs"]["blessing"]["metadata"]["blessed"] == 1
    versions = _versions(runs["client"])
    assert versions[:1] == runs["first_versions"] and len(versions) == 2
    for version in versions:
        assert f"serving/{version}/saved_model.pb" in _keys(runs["client"], f"serving/{version}/")
    assert not [k for k in _keys(runs["client"], "serving/") if "/.incomplete" in "/" + k]


def test_the_pushed_version_loads_from_s3_in_a_fresh_process_and_scores(runs):
    env = s3_process_env(runs["endpoint"])
    done = subprocess.run([sys.executable, "-c", _SCORE, SERVING,
                           json.dumps([r.hex() for r in runs["records"]])],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["path"] == f"{SERVING}/{_versions(runs['client'])[-1]}"
    assert set(loaded["scores"]) == {"ctr", "cvr", "ctcvr"}
    assert all(len(v) == 5 and all(0 <= p <= 1 for p in v) for v in loaded["scores"].values())


def test_a_pod_without_its_s3_secret_does_not_start(runs, tmp_path):
    with pytest.raises(TaskFailed, match=f"secret '{SECRET}'.*not found"):
        Backend(str(tmp_path / "backend")).run(runs["package"], ROOT, run_id="no-secret")
