"""Kubeflow Pipelines v2: compile through the tfx CLI, check the spec, submit it to a fake API.

The compiled spec's run through an emulation of the open-source backend is in
tests/test_kubeflow_backend.py.
"""
import contextlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading

import kfp_server_api
import pytest
import yaml

from conftest import tiny_pipeline_config
from kubeflow import entrypoint
from kubeflow.runner import NEVER_CACHED_ON_KUBEFLOW

pytestmark = pytest.mark.e2e

VENV_BIN = os.path.dirname(sys.executable)
IMAGE = "registry.example.com/ml/lt4rec-tfx:test"
PIPELINE_ROOT = "gs://example-bucket/lt4rec/root"
SPEC_TOP_K = 7777
COMPONENTS = ("ImportExampleGen", "ImportSchemaGen", "StatisticsGen", "StrictExampleValidator",
              "Transform", "TicketSearch", "MTLTrainer", "BaselineModel", "Evaluator",
              "InfraValidator", "AtomicPusher")
TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
NODE_SELECTOR = {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
UPSTREAM = {
    "StatisticsGen": {"ImportExampleGen", "ImportSchemaGen"},
    "StrictExampleValidator": {"ImportExampleGen", "StatisticsGen", "ImportSchemaGen"},
    "Transform": {"ImportExampleGen", "ImportSchemaGen", "StrictExampleValidator"},
    "TicketSearch": {"ImportExampleGen", "Transform", "ImportSchemaGen"},   # the span
    "MTLTrainer": {"Transform", "ImportSchemaGen", "TicketSearch"},
    "BaselineModel": {"MTLTrainer"},
    "Evaluator": {"ImportExampleGen", "ImportSchemaGen", "MTLTrainer", "BaselineModel"},
    "InfraValidator": {"ImportExampleGen", "MTLTrainer"},
    "AtomicPusher": {"MTLTrainer", "Evaluator", "InfraValidator"},
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
    config["spec"]["groups"] = {"FEA_UID": {"top_k": SPEC_TOP_K}}
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


def test_the_feature_spec_travels_inside_the_config_parameters(compiled):
    """Transform and the trainers get the spec as data (their cache keys cover it), never as a
    path to open."""
    tasks = compiled["pipelineSpec"]["root"]["dag"]["tasks"]
    for name in ("Transform", "TicketSearch", "MTLTrainer"):
        parameters = json.dumps(tasks[name]["inputs"]["parameters"])
        assert re.search(rf'top_k\W+{SPEC_TOP_K}\b', parameters), name
        assert "FEA_UCAT" in parameters and ".yaml" not in parameters, name


def test_spec_is_schema_2_1_with_container_executors_only(compiled):
    spec = compiled["pipelineSpec"]
    assert spec["schemaVersion"] == "2.1.0"
    executors = spec["deploymentSpec"]["executors"]
    assert all(set(e) == {"container"} for e in executors.values()), executors.keys()
    declared = spec["root"]["inputDefinitions"]["parameters"]
    for name in COMPONENTS:                  # 2.1 parameters: google.protobuf.Value constants
        for value in spec["root"]["dag"]["tasks"][name].get("inputs", {}).get(
                "parameters", {}).values():  # or run parameters the spec declares
            assert set(value.get("runtimeValue", {"constant": 0})) == {"constant"}, name
            assert value.get("componentInputParameter", "data_root") in declared, name


def test_steps_reading_outside_the_artifact_graph_are_never_cached(compiled):
    tasks = compiled["pipelineSpec"]["root"]["dag"]["tasks"]
    assert set(NEVER_CACHED_ON_KUBEFLOW) == {"ImportExampleGen", "ImportSchemaGen",
                                             "BaselineModel"}
    for name in COMPONENTS:
        assert tasks[name]["cachingOptions"].get("enableCache", False) is (
            name not in NEVER_CACHED_ON_KUBEFLOW), name


def test_every_container_uses_our_image_and_only_trainers_request_gpus(compiled):
    executors = compiled["pipelineSpec"]["deploymentSpec"]["executors"]
    containers = {name.replace("_executor", ""): spec["container"]
                  for name, spec in executors.items() if "container" in spec}
    assert set(COMPONENTS) <= set(containers)
    for name, container in containers.items():
        assert container["image"] == IMAGE, name
        assert container["command"] == entrypoint.COMMAND, name
        accelerator = container.get("resources", {}).get("accelerator")
        if name in ("TicketSearch", "MTLTrainer"):
            assert accelerator == {"type": "nvidia.com/gpu", "count": "2"}, name
        else:
            assert accelerator is None, name


def test_every_container_requests_the_configured_cpu_and_memory(compiled):
    """`kubeflow.resources` (cores, GB) reach each container's resources, ExampleGen included;
    a component without its own entry gets "default"."""
    resources = tiny_pipeline_config().kubeflow.resources
    executors = compiled["pipelineSpec"]["deploymentSpec"]["executors"]
    for name in COMPONENTS:
        container = executors[f"{name}_executor"]["container"]
        expected = {"cpu_request": "cpuRequest", "cpu_limit": "cpuLimit",
                    "memory_request": "memoryRequest", "memory_limit": "memoryLimit"}
        wanted = resources.get(name, resources["default"])
        got = {key: container["resources"].get(field) for key, field in expected.items()
               if key in wanted}
        assert got == pytest.approx(wanted), name
    assert executors["MTLTrainer_executor"]["container"]["resources"]["memoryLimit"] == 32.0
    assert executors["ImportExampleGen_executor"]["container"]["resources"]["memoryLimit"] == 8.0


BEAM_COMPONENTS = ("ImportExampleGen", "StatisticsGen", "Transform", "Evaluator")


def test_beam_workers_and_thread_pools_follow_the_pods_cpu_request(compiled):
    """Each Beam step's last worker-count flag is its pod's CPU request (not the configured 0:
    one per core of the node); every container tells the entrypoint its cores (TensorFlow's
    thread pools)."""
    resources = tiny_pipeline_config().kubeflow.resources
    executors = compiled["pipelineSpec"]["deploymentSpec"]["executors"]
    for name in COMPONENTS:
        container = executors[f"{name}_executor"]["container"]
        cores = str(int(resources.get(name, resources["default"])["cpu_request"]))
        assert container["env"] == [{"name": entrypoint.POD_CPUS_ENV, "value": cores}], name
        workers = [arg for arg in container["args"] if arg.startswith("--direct_num_workers=")]
        if name in BEAM_COMPONENTS:
            assert workers[-1] == f"--direct_num_workers={cores}", name


def test_a_worker_count_the_user_chose_is_kept():
    from kubeflow import runner
    chosen = ["--direct_running_mode=multi_processing", "--direct_num_workers=3"]
    for args, expected in ((chosen, chosen), (["--direct_num_workers=0"],
                                              ["--direct_num_workers=0", "--direct_num_workers=8"])):
        pipeline = runner.build(tiny_pipeline_config(kubeflow={"beam_pipeline_args": args}))
        transform = next(c for c in pipeline.components if c.id == "Transform")
        assert transform.executor_spec.beam_pipeline_args == expected


@pytest.mark.parametrize("env, cpu_max, expected", [
    ({entrypoint.POD_CPUS_ENV: "8"}, "max 100000", 8),
    ({entrypoint.POD_CPUS_ENV: "8"}, "250000 100000", 3),     # a lower quota: 2.5 cores
    ({}, "400000 100000", 4),
    ({}, None, None),
])
def test_the_entrypoint_sizes_to_the_pod_not_the_node(tmp_path, env, cpu_max, expected):
    path = tmp_path / "cpu.max"
    if cpu_max:
        path.write_text(cpu_max + "\n")
    assert entrypoint.pod_cores(env, str(path)) == expected


def test_resources_for_unknown_components_or_above_their_limit_are_refused():
    from kubeflow import runner
    from modules.config import ConfigError
    config = tiny_pipeline_config()
    config.kubeflow.resources = {"Trainer": {"cpu_request": 2}}
    with pytest.raises(ConfigError, match=r"unknown component\(s\) \['Trainer'\]"):
        runner.build(config)
    with pytest.raises(ConfigError, match="kubeflow.resources.Transform.memory_request = 64 "
                                          "must not exceed memory_limit 32"):
        tiny_pipeline_config(kubeflow={"resources": {
            "Transform": {"memory_request": 64, "memory_limit": 32}}})


def test_pipeline_root_is_a_run_time_setting(compiled):
    assert compiled["runtimeConfig"]["gcsOutputDirectory"] == PIPELINE_ROOT
    assert PIPELINE_ROOT not in json.dumps(compiled["pipelineSpec"])


class _FakeKfpApi(http.server.BaseHTTPRequestHandler):
    """The Kubeflow Pipelines v2beta1 calls a submission or a schedule makes, recorded."""

    requests = []
    headers = []

    def _reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, method, body):
        _FakeKfpApi.requests.append((method, self.path, body))
        _FakeKfpApi.headers.append({k.lower(): v for k, v in self.headers.items()})

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._record("GET", None)
        if self.path.startswith("/apis/v2beta1/healthz"):
            return self._reply({"multi_user": False})
        return self._reply({"experiments": [], "total_size": 0})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        self._record("POST", body)
        # The bodies are what the KFP API's own request types hold (an unknown field: TypeError).
        if self.path.startswith("/apis/v2beta1/experiments"):
            kfp_server_api.V2beta1Experiment(**body)
            return self._reply({"experiment_id": "exp-1", "display_name": body["display_name"]})
        if self.path.startswith("/apis/v2beta1/recurringruns"):
            kfp_server_api.V2beta1RecurringRun(**body)
            return self._reply({"recurring_run_id": "rr-7", "display_name": body["display_name"]})
        kfp_server_api.V2beta1Run(**body)
        return self._reply({"run_id": "run-42", "display_name": body.get("display_name")})

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _fake_kfp_api():
    """Serve `_FakeKfpApi` on 127.0.0.1 (its records emptied); yields its URL."""
    _FakeKfpApi.requests.clear()
    _FakeKfpApi.headers.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeKfpApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_submit_uploads_the_spec_and_starts_a_run(compiled, tmp_path):
    from kubeflow import submit
    from modules.config import Config
    spec_path = tmp_path / "pipeline.json"
    spec_path.write_text(json.dumps(compiled))
    with _fake_kfp_api() as endpoint:
        config = Config.from_dict({"kubeflow": {
            "endpoint": endpoint, "namespace": "team-a",
            "pipeline_root": "gs://other-bucket/root", "gpu_tolerations": [TOLERATION],
            "gpu_node_selector": NODE_SELECTOR}})
        assert submit.submit(str(spec_path), config, run_name="nightly") == "run-42"
    assert not [h for h in _FakeKfpApi.headers if "authorization" in h or "cookie" in h]
    posts = {path.split("?")[0]: body for method, path, body in _FakeKfpApi.requests
             if method == "POST"}
    run = posts["/apis/v2beta1/runs"]
    assert run["display_name"] == "nightly" and run["experiment_id"] == "exp-1"
    assert run["runtime_config"]["pipeline_root"] == "gs://other-bucket/root"
    spec = run["pipeline_spec"]["pipeline_spec"]
    compiled_tasks = compiled["pipelineSpec"]["root"]["dag"]["tasks"]
    assert set(spec["root"]["dag"]["tasks"]) == set(compiled_tasks)
    for name, task in spec["root"]["dag"]["tasks"].items():   # caching as compiled, per step
        assert task["cachingOptions"].get("enableCache", False) is compiled_tasks[name][
            "cachingOptions"].get("enableCache", False), name
    executors = run["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"][
        "deploymentSpec"]["executors"]
    assert set(executors) == {"TicketSearch_executor", "MTLTrainer_executor"}
    assert set(executors) <= set(spec["deploymentSpec"]["executors"])
    for placement in executors.values():
        assert placement == {"nodeSelector": {"labels": NODE_SELECTOR},
                             "tolerations": [TOLERATION]}
    assert posts["/apis/v2beta1/experiments"]["namespace"] == "team-a"


def test_gpu_placement_needs_gpus_and_valid_tolerations(compiled, tmp_path):
    from kubeflow import submit
    from modules.config import Config, ConfigError
    spec_path = tmp_path / "pipeline.json"
    spec_path.write_text(json.dumps(compiled))
    no_gpus = Config.from_dict({"kubeflow": {"trainer_gpus": 0, "gpu_tolerations": [TOLERATION]}})
    package, _ = submit.kfp_package(str(spec_path), str(tmp_path), no_gpus.kubeflow)
    assert len(list(yaml.safe_load_all(open(package)))) == 1
    with pytest.raises(ConfigError, match="kubeflow.gpu_tolerations"):
        Config.from_dict({"kubeflow": {"gpu_tolerations": [{"taint": "gpu"}]}}).validate()


def test_gpu_placement_of_a_pipeline_without_ticket_search_places_the_trainer_only(compiled):
    from kubeflow import submit
    from modules.config import Config
    spec = json.loads(json.dumps(compiled["pipelineSpec"]))
    del spec["root"]["dag"]["tasks"]["TicketSearch"]          # mtl.architecture without tickets
    config = Config.from_dict({"kubeflow": {"gpu_node_selector": NODE_SELECTOR}})
    executors = submit.platform_spec(spec, config.kubeflow)["platforms"]["kubernetes"][
        "deploymentSpec"]["executors"]
    assert set(executors) == {"MTLTrainer_executor"}


def test_submit_sends_the_callers_token_and_cookies_to_a_multi_user_install(compiled, tmp_path):
    """A token file (a pod's projected ServiceAccount token, or one given) is sent as a bearer
    token, a browser session's cookies as the Cookie header, on every request; the experiment
    and run go to the profile namespace."""
    from kubeflow import submit
    from modules.config import Config, ConfigError
    spec_path = tmp_path / "pipeline.json"
    spec_path.write_text(json.dumps(compiled))
    (tmp_path / "token").write_text("sa-token-1\n")
    (tmp_path / "cookies").write_text("authservice_session=abc123\n")
    for how in ("flags", "pod"):
        with _fake_kfp_api() as endpoint:
            config = Config.from_dict({"kubeflow": {"endpoint": endpoint,
                                                    "namespace": "team-a"}})
            client = submit.connect(config.kubeflow, str(tmp_path / "token"),
                                    str(tmp_path / "cookies")) if how == "flags" else \
                submit.connect(config.kubeflow, environ={
                    "KF_PIPELINES_SA_TOKEN_PATH": str(tmp_path / "token")})
            assert submit.submit(str(spec_path), config, client=client) == "run-42"
        assert _FakeKfpApi.headers and all(
            h["authorization"] == "Bearer sa-token-1" for h in _FakeKfpApi.headers), how
        assert all(h.get("cookie") == ("authservice_session=abc123" if how == "flags" else None)
                   for h in _FakeKfpApi.headers), how
        posts = {path.split("?")[0]: body for method, path, body in _FakeKfpApi.requests
                 if method == "POST"}
        assert posts["/apis/v2beta1/experiments"]["namespace"] == "team-a"
    with pytest.raises(ConfigError, match="credentials file not found: .*missing"):
        submit.connect(config.kubeflow, str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="not reachable at kubeflow.endpoint"):
        submit.submit(str(spec_path), config, client=client)   # the fake API has stopped


def test_schedule_creates_a_recurring_run_of_the_spec_one_at_a_time(compiled, tmp_path):
    """`lt4rec kubeflow schedule`: a recurring run of the compiled spec (each run reads the
    newest span), in the profile namespace, with the caller's token; one run at a time, no
    catch-up. A five-field cron gets KFP's leading seconds field."""
    from kubeflow import submit
    from modules.config import Config, ConfigError
    spec_path = tmp_path / "pipeline.json"
    spec_path.write_text(json.dumps(compiled))
    (tmp_path / "token").write_text("sa-token-1")
    bodies = {}
    for how, when in (("cron", {"cron": "0 3 * * *"}), ("interval", {"interval_seconds": 3600})):
        with _fake_kfp_api() as endpoint:
            config = Config.from_dict({"kubeflow": {
                "endpoint": endpoint, "namespace": "team-a", "pipeline_root": "s3://bucket/root",
                "s3_secret": "mlpipeline-minio-artifact"}})
            client = submit.connect(config.kubeflow, str(tmp_path / "token"))
            assert submit.schedule(str(spec_path), config, client=client, **when) == "rr-7"
        assert all(h["authorization"] == "Bearer sa-token-1" for h in _FakeKfpApi.headers)
        posts = {path.split("?")[0]: body for method, path, body in _FakeKfpApi.requests
                 if method == "POST"}
        assert posts["/apis/v2beta1/experiments"]["namespace"] == "team-a"
        bodies[how] = posts["/apis/v2beta1/recurringruns"]
    cron, interval = bodies["cron"], bodies["interval"]
    assert cron["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}
    assert interval["trigger"] == {"periodic_schedule": {"interval_second": 3600}}
    for body in (cron, interval):
        assert body["experiment_id"] == "exp-1" and body["display_name"] == "lt4rec-daily"
        assert body["max_concurrency"] == 1 and body["no_catchup"] is True
        assert body["mode"] == "ENABLE"
        assert body["runtime_config"]["pipeline_root"] == "s3://bucket/root"
        assert set(body["pipeline_spec"]["pipeline_spec"]["root"]["dag"]["tasks"]) == set(
            compiled["pipelineSpec"]["root"]["dag"]["tasks"])
        # the platform spec (here: the pods' S3 secret) travels with the recurring run too
        executors = body["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"][
            "deploymentSpec"]["executors"]
        assert executors and all(e["secretAsEnv"][0]["secretName"] ==
                                 "mlpipeline-minio-artifact" for e in executors.values())
    for bad in ({}, {"cron": "0 3 * * *", "interval_seconds": 60}, {"cron": "3 * *"},
                {"interval_seconds": 0}):
        with pytest.raises(ConfigError):
            submit.schedule(str(spec_path), config, client=client, **bad)


def _parameters(spec):
    return spec["root"]["inputDefinitions"]["parameters"]


def test_the_data_root_and_gates_are_run_parameters_defaulting_to_the_compiled_values(compiled):
    spec = compiled["pipelineSpec"]
    parameters = _parameters(spec)
    assert {name: (p["parameterType"], p["defaultValue"]) for name, p in parameters.items()} == {
        "data_root": ("STRING", "gs://your-bucket/lt4rec/data"),
        "auc_lower_bound": ("NUMBER_DOUBLE", 0.0), "max_auc_regression": ("NUMBER_DOUBLE", 1.0),
        "gates": ("STRING", "{}")}                 # a flat data root: no span parameter
    assert all(p["description"] for p in parameters.values())
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["ImportExampleGen"]["inputs"]["parameters"]["input_base"] == {
        "componentInputParameter": "data_root"}
    evaluator = tasks["Evaluator"]["inputs"]["parameters"]
    assert {key: evaluator[key] for key in ("auc_lower_bound", "max_auc_regression",
                                             "gates_json")} == {
        "auc_lower_bound": {"componentInputParameter": "auc_lower_bound"},
        "max_auc_regression": {"componentInputParameter": "max_auc_regression"},
        "gates_json": {"componentInputParameter": "gates"}}
    # Nothing else reads a run parameter.
    readers = {name for name, task in tasks.items() for value in task.get("inputs", {}).get(
        "parameters", {}).values() if "componentInputParameter" in value}
    assert readers == {"ImportExampleGen", "Evaluator"}


def test_a_spans_layout_declares_the_span_a_run_may_ask_for(tmp_path):
    from kubeflow import runner
    config = json.loads(tiny_pipeline_config().to_json())
    config["data"]["layout"] = "spans"
    config["evaluation"]["gates"] = {"cvr": {"auc_lower_bound": 0.6}}
    from modules.config import Config
    job = json.loads(open(runner.compile_spec(Config.from_dict(config), str(tmp_path))).read())
    parameters = _parameters(job["pipelineSpec"])
    assert (parameters["span"]["parameterType"], parameters["span"]["defaultValue"]) == (
        "NUMBER_INTEGER", 0)                      # 0: the newest span
    assert json.loads(parameters["gates"]["defaultValue"]) == {"cvr": {"auc_lower_bound": 0.6}}
    example_gen = job["pipelineSpec"]["root"]["dag"]["tasks"]["ImportExampleGen"]
    assert example_gen["inputs"]["parameters"]["requested_span"] == {
        "componentInputParameter": "span"}
    assert "range_config" not in example_gen["inputs"]["parameters"]


def test_submit_sends_the_run_parameters_typed_and_the_caching_flag(compiled, tmp_path, capsys):
    from pipeline import cli
    spec_path = tmp_path / "pipeline.json"
    spec_path.write_text(json.dumps(compiled))
    with _fake_kfp_api() as endpoint:
        args = ["kubeflow", "submit", "--pipeline", str(spec_path), "--endpoint", endpoint]
        assert cli.main(args + ["--param", "data_root=gs://other/day-2", "--param",
                                "auc_lower_bound=0.7", "--param",
                                'gates={"cvr": {"max_auc_regression": 0}}', "--no-cache"]) == 0
        assert "submitted run run-42" in capsys.readouterr().out
        runs = [body for method, path, body in _FakeKfpApi.requests
                if method == "POST" and path.startswith("/apis/v2beta1/runs")]
        # Refused before anything is sent: an unknown name (the declared ones are listed), an
        # ill-typed value, gate values the Evaluator would refuse.
        for bad, message in (("span=3", "invalid run parameter 'span': the pipeline declares "
                                        "auc_lower_bound"),
                             ("auc_lower_bound=high", "auc_lower_bound='high': must be a number"),
                             ("auc_lower_bound=2", "evaluation.auc_lower_bound"),
                             ("gates={cvr", "run parameter gates: not JSON"),
                             ("data_root", "expected NAME=VALUE")):
            assert cli.main(args + ["--param", bad]) == 2, bad
            assert message in capsys.readouterr().err, bad
        assert len([1 for method, path, _ in _FakeKfpApi.requests if method == "POST"]) == 2
    (run,) = runs
    assert run["runtime_config"]["parameters"] == {
        "data_root": "gs://other/day-2", "auc_lower_bound": 0.7,
        "gates": '{"cvr": {"max_auc_regression": 0}}'}
    tasks = run["pipeline_spec"]["root"]["dag"]["tasks"]          # no platform spec: not nested
    assert all(not task.get("cachingOptions", {}).get("enableCache") for task in tasks.values())


def test_a_recurring_run_takes_run_parameters_but_not_a_span(compiled, tmp_path):
    from kubeflow import submit
    from modules.config import Config, ConfigError
    spec = json.loads(json.dumps(compiled))
    _parameters(spec["pipelineSpec"])["span"] = {"parameterType": "NUMBER_INTEGER",
                                                 "defaultValue": 0}
    spec_path = tmp_path / "pipeline.json"
    spec_path.write_text(json.dumps(spec))
    with _fake_kfp_api() as endpoint:
        config = Config.from_dict({"kubeflow": {"endpoint": endpoint}})
        with pytest.raises(ConfigError, match="each run reads the newest span"):
            submit.schedule(str(spec_path), config, cron="0 3 * * *", parameters={"span": "4"})
        assert submit.schedule(str(spec_path), config, cron="0 3 * * *",
                               parameters={"max_auc_regression": "0.005"}) == "rr-7"
    (body,) = [body for method, path, body in _FakeKfpApi.requests
               if method == "POST" and path.startswith("/apis/v2beta1/recurringruns")]
    assert body["runtime_config"]["parameters"] == {"max_auc_regression": 0.005}


def test_the_push_waits_for_tf_serving_to_load_and_answer_on_kubeflow_only(compiled, tmp_path):
    """On Kubeflow the InfraValidator (TF Serving on Kubernetes, LOAD_AND_QUERY on eval examples)
    gates the push beside the Evaluator; a local run, with no model server, has no such node."""
    from tfx.proto import infra_validator_pb2
    from tfx.utils import proto_utils
    from pipeline.pipeline import create_pipeline
    tasks = compiled["pipelineSpec"]["root"]["dag"]["tasks"]
    pusher = tasks["AtomicPusher"]["inputs"]["artifacts"]
    assert pusher["infra_blessing"]["taskOutputArtifact"] == {
        "producerTask": "InfraValidator", "outputArtifactKey": "blessing"}
    parameters = {key: value["runtimeValue"]["constant"]
                  for key, value in tasks["InfraValidator"]["inputs"]["parameters"].items()}
    serving = proto_utils.json_to_proto(parameters["serving_spec"],
                                        infra_validator_pb2.ServingSpec())
    assert (serving.tensorflow_serving.image_name, list(serving.tensorflow_serving.tags),
            serving.WhichOneof("serving_platform"), serving.model_name) == (
        "tensorflow/serving", ["2.16.1"], "kubernetes", "lt4rec")
    request = proto_utils.json_to_proto(parameters["request_spec"],
                                        infra_validator_pb2.RequestSpec())
    assert (list(request.tensorflow_serving.signature_names), request.split_name) == (
        ["serving_default"], "eval")                     # LOAD_AND_QUERY: examples are queried
    assert tasks["InfraValidator"]["inputs"]["artifacts"]["examples"]["taskOutputArtifact"][
        "producerTask"] == "ImportExampleGen"
    executor = compiled["pipelineSpec"]["deploymentSpec"]["executors"]["InfraValidator_executor"]
    assert "components.infra_validator.executor.Executor" in executor["container"]["args"]
    local = create_pipeline(str(tmp_path / "root"), str(tmp_path / "data"),
                            str(tmp_path / "serving"), tiny_pipeline_config())
    ids = [component.id for component in local.components]
    assert "InfraValidator" not in ids and "AtomicPusher" in ids
    assert "infra_blessing" not in local.components[-1].inputs
