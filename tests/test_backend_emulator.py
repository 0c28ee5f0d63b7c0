"""The open-source KFP backend emulation on toy specs (fast), and the pod entrypoint's repairs."""
import json
import re
import sys

import pytest
import yaml

from kubeflow import backend_emulator, entrypoint
from kubeflow.backend_emulator import Backend, BackendRefusal, TaskFailed

# A task's command: append its ExecutorInput to a log, write `value` into every output URI.
_WRITER = """
import json, os, sys
executor_input = json.loads(sys.argv[1])
with open(os.environ["EMULATOR_LOG"], "a") as log:
    log.write(json.dumps(executor_input) + "\\n")
for key, artifacts in executor_input["outputs"]["artifacts"].items():
    uri = artifacts["artifacts"][0]["uri"]
    os.makedirs(uri, exist_ok=True)
    with open(os.path.join(uri, "value"), "w") as f:
        f.write(os.environ.get("EMULATOR_VALUE", "x"))
sys.exit(int(os.environ.get("EMULATOR_EXIT", "0")))
"""
_TYPE = {"instanceSchema": "title: tfx.Examples\ntype: object\n"}


def _toy_spec(cache=True, version="2.1.0"):
    """Two tasks: `first` writes `out`, `second` (listed first) reads it as `data`."""
    def component(name, inputs):
        spec = {"executorLabel": f"{name}_executor",
                "outputDefinitions": {"artifacts": {"out": {"artifactType": _TYPE}}}}
        if inputs:
            spec["inputDefinitions"] = {"artifacts": {"data": {"artifactType": _TYPE}}}
        return spec
    container = {"image": "toy:1", "command": [sys.executable, "-c", _WRITER], "args": ["{{$}}"]}
    return {
        "schemaVersion": version, "pipelineInfo": {"name": "toy"},
        "components": {"first": component("first", False), "second": component("second", True)},
        "deploymentSpec": {"executors": {"first_executor": {"container": container},
                                         "second_executor": {"container": container}}},
        "root": {"dag": {"tasks": {
            "second": {"componentRef": {"name": "second"}, "dependentTasks": ["first"],
                       "cachingOptions": {"enableCache": cache},
                       "inputs": {"artifacts": {"data": {"taskOutputArtifact": {
                           "producerTask": "first", "outputArtifactKey": "out"}}}}},
            "first": {"componentRef": {"name": "first"},
                      "cachingOptions": {"enableCache": cache},
                      "inputs": {"parameters": {"n": {"runtimeValue": {"constant": 3}}}}},
        }}},
    }


@pytest.fixture
def backend(tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("EMULATOR_LOG", str(log))
    emulator = Backend(str(tmp_path / "state"))
    emulator.log = log
    return emulator


def _logged(backend):
    return [json.loads(line) for line in backend.log.read_text().splitlines()]


def test_tasks_run_in_dependency_order_with_the_drivers_executor_input(backend, tmp_path):
    results = backend.run(_toy_spec(), str(tmp_path / "root"), run_id="r1")
    first, second = _logged(backend)
    assert list(results) == ["first", "second"]
    assert first["inputs"]["parameterValues"] == {"n": 3}
    out = first["outputs"]["artifacts"]["out"]["artifacts"][0]
    assert out["type"] == _TYPE
    prefix = f"{tmp_path}/root/toy/r1/first/"
    assert out["uri"].startswith(prefix) and out["uri"].endswith("/out")
    logs = first["outputs"]["artifacts"][backend_emulator.EXECUTOR_LOGS]["artifacts"][0]
    assert logs["type"] == {"schemaTitle": "system.Artifact"}
    # Upstream artifacts come back from metadata untyped, named by their id.
    (data,) = second["inputs"]["artifacts"]["data"]["artifacts"]
    assert data["type"] == {"instanceSchema": ""}
    assert data["uri"] == out["uri"] and data["name"] == results["first"]["outputs"]["out"]["name"]
    assert data["metadata"]["display_name"] == "out"


def test_the_cache_serves_a_task_whose_key_was_seen_even_if_its_files_changed(
        backend, tmp_path, monkeypatch):
    backend.run(_toy_spec(), str(tmp_path / "root"), run_id="r1")
    monkeypatch.setenv("EMULATOR_VALUE", "new data")   # invisible to the key
    again = backend.run(_toy_spec(), str(tmp_path / "root"), run_id="r2")
    assert [r["state"] for r in again.values()] == ["CACHED", "CACHED"]
    assert len(_logged(backend)) == 2
    uncached = backend.run(_toy_spec(cache=False), str(tmp_path / "root"), run_id="r3")
    assert [r["state"] for r in uncached.values()] == ["COMPLETE", "COMPLETE"]
    overridden = backend.run(_toy_spec(cache=False), str(tmp_path / "root"), run_id="r4",
                             enable_caching=True)
    assert overridden["first"]["state"] == "CACHED"


def test_a_failing_command_fails_the_run_naming_the_task(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("EMULATOR_EXIT", "3")
    with pytest.raises(TaskFailed, match="task 'first' failed .exit 3."):
        backend.run(_toy_spec(cache=False), str(tmp_path / "root"))


def test_run_creation_refuses_what_the_api_server_and_compiler_refuse(backend, tmp_path):
    with pytest.raises(BackendRefusal, match="only supports schema version 2.1.0, but the "
                                             "pipeline spec has version 2.0.0"):
        backend.run(_toy_spec(version="2.0.0"), str(tmp_path))
    spec = _toy_spec()
    spec["deploymentSpec"]["executors"]["first_executor"] = {"resolver": {}}
    with pytest.raises(BackendRefusal, match="'first'.*resolver executors not implemented"):
        backend.run(spec, str(tmp_path))
    spec["deploymentSpec"]["executors"]["first_executor"] = {"customJob": {}}
    with pytest.raises(BackendRefusal, match="non-container and non-importer"):
        backend.run(spec, str(tmp_path))


def _with_run_parameters(spec):
    """`spec` whose task `first` reads its `n` and `root` from the run parameters `rows`
    (default 3) and `where` (default "/data")."""
    spec["root"]["inputDefinitions"] = {"parameters": {
        "rows": {"parameterType": "NUMBER_INTEGER", "defaultValue": 3},
        "where": {"parameterType": "STRING", "defaultValue": "/data"}}}
    spec["root"]["dag"]["tasks"]["first"]["inputs"]["parameters"] = {
        "n": {"componentInputParameter": "rows"}, "root": {"componentInputParameter": "where"}}
    return spec


def test_run_parameters_take_their_defaults_or_the_runs_values(backend, tmp_path):
    spec = _with_run_parameters(_toy_spec(cache=True))
    first = backend.run(spec, str(tmp_path / "root"), run_id="r1")
    second = backend.run(spec, str(tmp_path / "root"), run_id="r2", parameters={"rows": 5})
    assert [e["inputs"]["parameterValues"] for e in _logged(backend)[::2]] == [
        {"n": 3, "root": "/data"}, {"n": 5, "root": "/data"}]
    # A value a run sets is part of the cache key: the task ran again.
    assert second["first"]["state"] == "COMPLETE"
    assert second["first"]["cache_key"] != first["first"]["cache_key"]
    assert backend.run(spec, str(tmp_path / "root"), run_id="r3")["first"]["state"] == "CACHED"


@pytest.mark.parametrize("parameters, message", [
    ({"rows": "5"}, "input parameter rows requires type double or integer, but the parameter "
                    "value is not of number value type"),
    ({"where": 7}, "input parameter where requires type string"),
    ({"rows": True}, "input parameter rows requires type double or integer"),
    ({"columns": 2}, "parameter(s) provided are not required by pipeline: columns"),
])
def test_run_creation_refuses_unknown_or_ill_typed_run_parameters(backend, tmp_path, parameters,
                                                                  message):
    with pytest.raises(BackendRefusal, match=re.escape(message)):
        backend.run(_with_run_parameters(_toy_spec()), str(tmp_path / "r"), parameters=parameters)
    assert not backend.log.exists()


def test_run_creation_refuses_a_run_parameter_without_value_or_default(backend, tmp_path):
    spec = _with_run_parameters(_toy_spec())
    del spec["root"]["inputDefinitions"]["parameters"]["rows"]["defaultValue"]
    with pytest.raises(BackendRefusal, match="parameter rows is not optional, yet has neither"):
        backend.run(spec, str(tmp_path / "r"))
    assert backend.run(spec, str(tmp_path / "r"), parameters={"rows": 2})["first"]["state"] \
        == "COMPLETE"


def test_a_pipeline_job_json_is_not_a_package(tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"displayName": "toy", "pipelineSpec": _toy_spec()}))
    with pytest.raises(BackendRefusal, match="unknown template format"):
        backend_emulator.load_package(str(job))
    package = tmp_path / "pipeline.yaml"
    platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {}}}}}
    package.write_text(yaml.safe_dump_all([_toy_spec(), platform]))
    assert backend_emulator.load_package(str(package)) == (_toy_spec(), platform)


def _executor_input():
    return {
        "inputs": {"artifacts": {
            "examples": {"artifacts": [{"name": "7", "uri": "/r/e", "type": {"instanceSchema": ""}}]},
            "schema": {"artifacts": [{"name": "8", "uri": "/r/s", "type": _TYPE}]}}},
        "outputs": {"artifacts": {
            "statistics": {"artifacts": [{"uri": "/r/o", "type": _TYPE}]},
            "executor-logs": {"artifacts": [{"uri": "/r/l",
                                             "type": {"schemaTitle": "system.Artifact"}}]}}},
    }


def test_entrypoint_types_untyped_inputs_from_the_spec_and_drops_system_outputs():
    declared = {"artifacts": {"examples": {"artifactType": {"schemaTitle": "tfx.Examples"}},
                              "schema": {"artifactType": _TYPE}}}
    repaired, changes = entrypoint.repair_executor_input(_executor_input(), declared)
    inputs = repaired["inputs"]["artifacts"]
    assert inputs["examples"]["artifacts"][0]["type"] == {"schemaTitle": "tfx.Examples"}
    assert inputs["schema"]["artifacts"][0]["type"] == _TYPE          # typed: left alone
    assert set(repaired["outputs"]["artifacts"]) == {"statistics"}
    assert len(changes) == 2


def test_entrypoint_refuses_an_untyped_input_the_spec_does_not_declare():
    with pytest.raises(ValueError, match="input artifact 'examples' has no type"):
        entrypoint.repair_executor_input(_executor_input(), {"artifacts": {}})


class _Blob:
    def __init__(self, name, size):
        self.name, self.size, self.deleted = name, size, False

    def delete(self):
        self.deleted = True


def test_only_zero_byte_directory_markers_under_the_artifact_are_removed():
    blobs = [_Blob("root/Transform/u/graph/", 0), _Blob("root/Transform/u/graph/meta/", 0),
             _Blob("root/Transform/u/graph/meta/schema.pbtxt", 120),
             _Blob("root/Transform/u/graph/empty.txt", 0),
             _Blob("root/Transform/u/graph2/", 0)]

    class _Bucket:
        def list_blobs(self, prefix):
            return [b for b in blobs if b.name.startswith(prefix)]

    class _Client:
        def bucket(self, name):
            assert name == "bucket"
            return _Bucket()

    removed = entrypoint.remove_gcs_directory_markers("gs://bucket/root/Transform/u/graph",
                                                      _Client())
    assert removed == 2
    assert [b.name for b in blobs if b.deleted] == ["root/Transform/u/graph/",
                                                    "root/Transform/u/graph/meta/"]
    assert entrypoint.remove_gcs_directory_markers("/local/path", _Client()) == 0


def test_lt4rec_kubeflow_emulate_runs_a_job_and_reports_refusals(backend, tmp_path, capsys):
    from pipeline import cli
    job = tmp_path / "job.json"
    args = ["kubeflow", "emulate", "--pipeline", str(job), "--state", str(tmp_path / "state"),
            "--pipeline-root", str(tmp_path / "root")]
    job.write_text(json.dumps({"pipelineSpec": _toy_spec()}))
    assert cli.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" in ")[0] for line in lines] == ["first: COMPLETE", "second: COMPLETE"]
    assert len(_logged(backend)) == 2
    job.write_text(json.dumps({"pipelineSpec": _toy_spec(version="2.0.0")}))
    assert cli.main(args) == 1
    assert "only supports schema version 2.1.0" in capsys.readouterr().err


def test_lt4rec_kubeflow_emulate_warns_of_a_push_gate_it_cannot_serve(backend, tmp_path, capsys):
    """A spec compiled with the InfraValidator (the default) runs, with a warning that the gate
    will refuse every push here; run parameters are passed on, checked."""
    from pipeline import cli
    spec = _with_run_parameters(_toy_spec())
    tasks = spec["root"]["dag"]["tasks"]
    tasks["InfraValidator"] = tasks.pop("second")
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"pipelineSpec": spec}))
    args = ["kubeflow", "emulate", "--pipeline", str(job), "--state", str(tmp_path / "state"),
            "--pipeline-root", str(tmp_path / "root")]
    assert cli.main(args + ["--param", "rows=4"]) == 0
    captured = capsys.readouterr()
    assert "kubeflow.infra_validation: false" in captured.err
    assert [line.split(" in ")[0] for line in captured.out.splitlines()] == [
        "first: COMPLETE", "InfraValidator: COMPLETE"]
    assert _logged(backend)[0]["inputs"]["parameterValues"]["n"] == 4
    assert cli.main(args + ["--param", "rows=four"]) == 2
    assert "invalid run parameter rows='four': must be an integer" in capsys.readouterr().err
