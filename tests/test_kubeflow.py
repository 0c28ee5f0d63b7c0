"""Kubeflow Pipelines v2: compile through the tfx CLI, then run one task the way a pod would."""
import http.server
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import tiny_pipeline_config
from modules import masks as masks_lib

pytestmark = pytest.mark.e2e

VENV_BIN = os.path.dirname(sys.executable)
IMAGE = "registry.example.com/ml/lt4rec-tfx:test"
PIPELINE_ROOT = "gs://example-bucket/lt4rec/root"
COMPONENTS = ("ImportExampleGen", "ImportSchemaGen", "StatisticsGen", "StrictExampleValidator",
              "Transform", "TicketSearch", "MTLTrainer", "Evaluator", "AtomicPusher")
UPSTREAM = {
    "StatisticsGen": {"ImportExampleGen", "ImportSchemaGen"},
    "StrictExampleValidator": {"StatisticsGen", "ImportSchemaGen"},
    "Transform": {"ImportExampleGen", "ImportSchemaGen", "StrictExampleValidator"},
    "TicketSearch": {"Transform", "ImportSchemaGen"},
    "MTLTrainer": {"Transform", "ImportSchemaGen", "TicketSearch"},
    "Evaluator": {"ImportExampleGen", "ImportSchemaGen", "MTLTrainer",
                  "latest_blessed_model_resolver-model-resolver"},
    "AtomicPusher": {"MTLTrainer", "Evaluator"},
}


def _env(**extra):
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The spec compiled by `tfx pipeline create --engine=vertex --pipeline_path=kubeflow/runner.py`."""
    tmp = tmp_path_factory.mktemp("kfp")
    config = json.loads(tiny_pipeline_config().to_json())
    config["kubeflow"].update({"image": IMAGE, "pipeline_root": PIPELINE_ROOT, "trainer_gpus": 2})
    (tmp / "config.json").write_text(json.dumps(config))
    result = subprocess.run(
        [os.path.join(VENV_BIN, "tfx"), "pipeline", "create", "--engine=vertex",
         "--pipeline_path=kubeflow/runner.py"],
        cwd=os.path.dirname(os.path.dirname(__file__)), capture_output=True, text=True,
        env=_env(VERTEX_HOME=str(tmp / "home"), LT4REC_CONFIG=str(tmp / "config.json")))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Pipeline "lt4rec" created successfully' in result.stdout
    return json.loads((tmp / "home" / "lt4rec" / "pipeline.json").read_text())


def test_spec_has_every_component_with_its_upstream_edges(compiled):
    tasks = compiled["pipelineSpec"]["root"]["dag"]["tasks"]
    assert set(COMPONENTS) <= set(tasks)
    for name, upstream in UPSTREAM.items():
        assert set(tasks[name].get("dependentTasks", [])) == upstream, name


def test_every_container_uses_our_image_and_only_trainers_request_gpus(compiled):
    executors = compiled["pipelineSpec"]["deploymentSpec"]["executors"]
    containers = {name.replace("_executor", ""): spec["container"]
                  for name, spec in executors.items() if "container" in spec}
    assert set(COMPONENTS) <= set(containers)
    for name, container in containers.items():
        assert container["image"] == IMAGE, name
        accelerator = container.get("resources", {}).get("accelerator")
        if name in ("TicketSearch", "MTLTrainer"):
            assert accelerator == {"type": "nvidia.com/gpu", "count": "2"}, name
        else:
            assert accelerator is None, name


def test_pipeline_root_is_a_run_time_setting(compiled):
    assert compiled["runtimeConfig"]["gcsOutputDirectory"] == PIPELINE_ROOT
    assert PIPELINE_ROOT not in json.dumps(compiled["pipelineSpec"])


def _artifact(uri, title, split_names=None):
    schema = f"title: {title}\ntype: object\n"
    metadata = {"split_names": json.dumps(split_names)} if split_names else {}
    return {"artifacts": [{"uri": uri, "name": uri, "type": {"instanceSchema": schema},
                           "metadata": metadata}]}


def test_ticket_search_task_runs_like_a_kubeflow_pod(compiled, tiny_run, tmp_path):
    """TFX's v2 container entrypoint with the spec's own arguments, as a local process."""
    spec = compiled["pipelineSpec"]
    container = spec["deploymentSpec"]["executors"]["TicketSearch_executor"]["container"]
    parameters = {name: value["runtimeValue"]["constantValue"] for name, value in
                  spec["root"]["dag"]["tasks"]["TicketSearch"]["inputs"]["parameters"].items()}
    transform = tiny_run["outputs"]["Transform"]
    examples = transform["transformed_examples"][0]
    split_names = json.loads(examples.properties["split_names"].string_value)
    assert sorted(split_names) == ["eval", "train", "validation"]
    schema = tiny_run["outputs"]["ImportSchemaGen"]["schema"][0].uri
    executor_input = {
        "inputs": {
            "parameters": parameters,
            "artifacts": {
                "examples": _artifact(examples.uri, "tfx.Examples", split_names),
                "transform_graph": _artifact(transform["transform_graph"][0].uri,
                                             "tfx.TransformGraph"),
                "schema": _artifact(schema, "tfx.Schema"),
            }},
        "outputs": {
            "artifacts": {"masks": _artifact(str(tmp_path / "masks"), "components.TaskMasks"),
                          "model_run": _artifact(str(tmp_path / "model_run"), "tfx.ModelRun")},
            "outputFile": str(tmp_path / "executor_output.json")},
    }
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in container["args"]]
    result = subprocess.run(
        [sys.executable, "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
         *args], capture_output=True, text=True, env=_env(), cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    masks = masks_lib.load(str(tmp_path / "masks"))
    assert set(masks) == {"ctr", "cvr"} and all(m.dtype == np.bool_ for m in masks["ctr"])
    report = json.loads((tmp_path / "masks" / "ticket_report.json").read_text())
    assert report["tasks"]["ctr"]["chosen_density"] <= 1.0
    output = json.loads((tmp_path / "executor_output.json").read_text())
    assert "masks" in output["artifacts"]


class _FakeKfpApi(http.server.BaseHTTPRequestHandler):
    """The three Kubeflow Pipelines v2beta1 calls a submission makes, recorded."""

    requests = []

    def _reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        _FakeKfpApi.requests.append(("GET", self.path, None))
        if self.path.startswith("/apis/v2beta1/healthz"):
            return self._reply({"multi_user": False})
        return self._reply({"experiments": [], "total_size": 0})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        _FakeKfpApi.requests.append(("POST", self.path, body))
        if self.path.startswith("/apis/v2beta1/experiments"):
            return self._reply({"experiment_id": "exp-1", "display_name": body["display_name"]})
        return self._reply({"run_id": "run-42", "display_name": body.get("display_name")})

    def log_message(self, *args):
        pass


def test_submit_uploads_the_spec_and_starts_a_run(compiled, tmp_path):
    from kubeflow import submit
    from pipeline.config import Config
    spec_path = tmp_path / "pipeline.json"
    spec_path.write_text(json.dumps(compiled))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeKfpApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = Config.from_dict({"kubeflow": {
            "endpoint": f"http://127.0.0.1:{server.server_port}", "namespace": "team-a",
            "pipeline_root": "gs://other-bucket/root"}})
        assert submit.submit(str(spec_path), config, run_name="nightly") == "run-42"
    finally:
        server.shutdown()
    posts = {path.split("?")[0]: body for method, path, body in _FakeKfpApi.requests
             if method == "POST"}
    run = posts["/apis/v2beta1/runs"]
    assert run["display_name"] == "nightly" and run["experiment_id"] == "exp-1"
    assert run["runtime_config"]["pipeline_root"] == "gs://other-bucket/root"
    assert set(run["pipeline_spec"]["root"]["dag"]["tasks"]) == set(
        compiled["pipelineSpec"]["root"]["dag"]["tasks"])
    assert posts["/apis/v2beta1/experiments"]["namespace"] == "team-a"
