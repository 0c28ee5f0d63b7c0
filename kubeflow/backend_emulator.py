"""Run a compiled pipeline on this machine the way the open-source Kubeflow Pipelines 2.x backend
runs it: the same checks at run creation, the same ExecutorInput per task, the same cache key, and
each task's container command run as a subprocess with this project's environment (plus the
  container's `env`).

What is emulated, and where the backend does it (github.com/kubeflow/pipelines, backend/src/v2 and
backend/src/apiserver, tags 2.0.0 to 2.17.0):

- Run creation accepts PipelineSpec schema version 2.1.0 only (apiserver/template/v2_template.go).
- Executors: container and importer only; a resolver (or any other) executor fails compilation
  (compiler/visitor.go, compiler/argocompiler/dag.go: "resolver executors not implemented").
  Importers are accepted but not emulated (this project compiles none).
- Tasks run in dependency order (`dependentTasks`, compiler/argocompiler/dag.go).
- Run parameters (apiserver/template/v2_template.go `validatePipelineJobInputs`): the root's
  input parameters; a run may set them (number or string values as declared), one it does
  not set takes its `defaultValue`; an unknown one, or a required one without a default, is
  refused at run creation.
- ExecutorInput (driver/driver.go `Container`, driver/resolve.go `resolveInputs`):
  `inputs.parameterValues` from each task parameter's `runtimeValue.constant` (2.1 style) or
  `componentInputParameter` (a run parameter);
  `inputs.artifacts` from upstream outputs reloaded from metadata, with an empty `type`
  (metadata/client.go keeps no schema for reloaded artifacts); one output artifact per declared
  output, typed as the component declares, under
  `<pipeline root>/<pipeline name>/<run id>/<task>/<uuid>/<output>` (driver/driver.go
  `provisionOutputs`, metadata/client.go `GenerateOutputURI`), plus an `executor-logs` output of
  type `system.Artifact` when log publishing is on (the default since backend 2.5.0, PR 11762);
  `outputs.outputFile` a local file the launcher reads after the command (the pod's
  `/tmp/kfp_outputs/output_metadata.json`, component/launcher_v2.go; here one per task).
- `{{$}}` in the arguments is the ExecutorInput JSON (component/launcher_v2.go placeholders).
- Cache (driver/cache.go, cacheutils/cache.go `GenerateCacheKey`): a task whose
  `cachingOptions.enableCache` is true and whose key was seen before is not run; its recorded
  outputs are reused. The key covers input artifact names, input parameter values, the output
  artifacts' and parameters' specs, the image and the unresolved command and arguments: nothing
  about files an executor reads by path.
- After the command (component/launcher_v2.go): a non-zero exit fails the task and the run; the
  output artifacts' uri and metadata come from the ExecutorOutput file and are recorded as new
  artifacts.

- Secrets (driver/k8s.go): a platform spec's `secretAsEnv` entries become the task's environment,
  from the `secrets` given to the backend.

Not emulated: the launcher's object-store downloads of every input artifact to a local path
(`/s3/...`, `/minio/...`, `/gcs/...`) before the command and its uploads from there after it
(component/launcher_v2.go `downloadArtifacts`, `uploadOutputArtifacts`; lt4rec reads and writes
artifacts at their URIs and leaves the local paths empty, which the upload skips), importer
executors, conditions and loops (this project compiles none of them).
"""
import copy
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid

import yaml

SCHEMA_VERSION = "2.1.0"
EXECUTOR_LOGS = "executor-logs"
_PLACEHOLDER = "{{$}}"


class BackendRefusal(ValueError):
    """The backend would refuse this spec at run creation; the message says why and where."""


class TaskFailed(RuntimeError):
    """A task's command exited non-zero; the message names the task and ends with its stderr."""


def load_package(path):
    """(pipeline spec, platform spec or None) of an uploaded package, as the API server reads it.

    A document with `pipelineInfo.name` and `root` is the spec, one with `platforms.kubernetes`
    the platform spec (apiserver/template/template.go `isPipelineSpec`); TFX's PipelineJob JSON
    (`pipelineSpec` inside a job) is neither, so the server answers "unknown template format".
    """
    with open(path, encoding="utf-8") as f:
        documents = [d for d in yaml.safe_load_all(f) if d]
    specs = [d for d in documents if d.get("pipelineInfo", {}).get("name") and d.get("root")]
    platforms = [d for d in documents if "kubernetes" in d.get("platforms", {})]
    if len(specs) != 1 or len(platforms) > 1:
        raise BackendRefusal(
            f"{path}: unknown template format: expected one pipeline spec (found {len(specs)}) "
            "and at most one platform spec (apiserver/template/template.go); a TFX PipelineJob "
            "JSON must be uploaded as its pipelineSpec (kubeflow.submit.kfp_package)")
    return specs[0], (platforms[0] if platforms else None)


def check_spec(spec):
    """Raise BackendRefusal for what run creation or compilation refuses."""
    version = spec.get("schemaVersion")
    if version != SCHEMA_VERSION:
        raise BackendRefusal(
            f"KFP only supports schema version {SCHEMA_VERSION}, but the pipeline spec has "
            f"version {version} (apiserver/template/v2_template.go `NewV2SpecTemplate`)")
    if not spec.get("pipelineInfo", {}).get("name") or not spec.get("root"):
        raise BackendRefusal("invalid v2 pipeline spec: name or root component is empty "
                             "(apiserver/template/v2_template.go)")
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    for task, component in _tasks(spec).items():
        label = spec["components"][component["componentRef"]["name"]].get("executorLabel")
        kinds = set(executors.get(label, {}))
        if not kinds & {"container", "importer"}:
            reason = ("resolver executors not implemented (compiler/argocompiler/dag.go)"
                      if "resolver" in kinds else
                      "non-container and non-importer executor not implemented "
                      "(compiler/visitor.go)")
            raise BackendRefusal(f"compiling task {task!r}: executor(label={label!r}): {reason}")


def _tasks(spec):
    return spec["root"]["dag"]["tasks"]


_JSON_KINDS = {"NUMBER_DOUBLE": ((int, float), "double or integer", "number"),
               "NUMBER_INTEGER": ((int, float), "double or integer", "number"),
               "STRING": ((str,), "string", "string"), "BOOLEAN": ((bool,), "bool", "bool")}


def run_parameters(spec, given=None):
    """The run's parameter values: `given` (name -> JSON value) over the root's defaults, checked
    as run creation checks them (BackendRefusal with the API server's message)."""
    given = dict(given or {})
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    values = {}
    for name, parameter in sorted(declared.items()):
        if name in given:
            value = given[name]
            kinds, wanted, kind = _JSON_KINDS.get(parameter.get("parameterType"), ((), "", ""))
            if not kinds or isinstance(value, bool) != (bool in kinds) or \
                    not isinstance(value, kinds):
                raise BackendRefusal(f"input parameter {name} requires type {wanted or 'unknown'}"
                                     f", but the parameter value is not of {kind} value type")
            values[name] = value
        elif "defaultValue" in parameter:
            values[name] = parameter["defaultValue"]
        elif not parameter.get("isOptional"):
            raise BackendRefusal(f"parameter {name} is not optional, yet has neither default "
                                 "value nor user provided value")
    extra = sorted(set(given) - set(declared))
    if extra:
        raise BackendRefusal("parameter(s) provided are not required by pipeline: "
                             + ", ".join(extra))
    return values


def dependency_order(spec):
    """Task names, every task after the tasks it depends on (ties by name)."""
    tasks = _tasks(spec)
    done, order = set(), []
    while len(order) < len(tasks):
        ready = sorted(name for name, task in tasks.items() if name not in done
                       and set(task.get("dependentTasks", [])) <= done)
        if not ready:
            raise BackendRefusal(f"dependency cycle among {sorted(set(tasks) - done)}")
        order += ready
        done.update(ready)
    return order


def cache_key(executor_input, container, output_parameter_types=None):
    """The backend's cache key of a task (cacheutils/cache.go `GenerateCacheKey`), as sha256.

    Same fields and sorted-key JSON as the Go code; numbers are not reformatted Go-style, so the
    digests differ from a real server's while hitting and missing on the same inputs.
    """
    output_parameter_types = output_parameter_types or {}
    inputs, outputs = executor_input["inputs"], executor_input["outputs"]
    key = {
        "inputArtifactNames": {k: sorted(a["name"] for a in v["artifacts"])
                               for k, v in inputs.get("artifacts", {}).items()},
        "inputParameterValues": inputs.get("parameterValues", {}),
        # Output artifacts without their URI; output parameters by type.
        "outputArtifactsSpec": {k: {f: v["artifacts"][0][f] for f in ("name", "type", "metadata")
                                    if v["artifacts"][0].get(f)}
                                for k, v in outputs.get("artifacts", {}).items()},
        "outputParametersSpec": output_parameter_types,
        "containerSpec": {"image": container["image"],
                          "cmdArgs": container.get("command", []) + container.get("args", [])},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


class Backend:
    """A Kubeflow Pipelines backend on this machine: metadata and cache kept under `state_dir`.

    `env` is the environment of every task's process (default: this process's at run time, with
    this Python's bin directory first on PATH, so the image's `python` is this project's);
    `publish_logs`
    adds the `executor-logs` output as backend 2.5.0+ does by default; `secrets` are the
    namespace's Kubernetes secrets ({name: {key: value}}) that a platform spec's `secretAsEnv`
    puts into a task's environment.
    """

    def __init__(self, state_dir, env=None, publish_logs=True, timeout=1800, secrets=None):
        self.state_dir = os.path.abspath(state_dir)
        os.makedirs(self.state_dir, exist_ok=True)
        self.env = env
        self.secrets = secrets or {}
        self._platform = {}
        self.publish_logs = publish_logs
        self.timeout = timeout
        self._cache_path = os.path.join(self.state_dir, "cache.json")
        self._ids_path = os.path.join(self.state_dir, "artifact_ids")

    def run(self, package, pipeline_root, run_id=None, enable_caching=None, parameters=None):
        """Run every task of `package` (a package path or a spec dict); returns
        {task: {"state": "COMPLETE" | "CACHED", "outputs": {key: artifact}, "cache_key",
        "seconds" (COMPLETE only)}}.

        `enable_caching` None keeps each task's compiled `cachingOptions`; True/False overrides
        every task, as the kfp client's `enable_caching` argument does. `parameters`: the run's
        parameter values (`run_parameters`).
        """
        spec, platform = load_package(package) if isinstance(package, str) else (package, None)
        spec = copy.deepcopy(spec)
        self._platform = platform or {}
        check_spec(spec)
        values = run_parameters(spec, parameters)
        run_id = run_id or uuid.uuid4().hex
        # The run's root: <pipeline root>/<pipeline name>/<run id> (driver/driver.go
        # `GetPipeline`, metadata/client.go `GenerateOutputURI`).
        run_root = "/".join([pipeline_root.rstrip("/"), spec["pipelineInfo"]["name"], run_id])
        results = {}
        for name in dependency_order(spec):
            results[name] = self.run_task(spec, name, run_root, run_id, results, enable_caching,
                                          values)
        return results

    def run_task(self, spec, name, run_root, run_id, results, enable_caching=None,
                 parameters=None):
        """Run one task given the earlier tasks' `results` (as `run` returns them) and the run's
        `parameters` (as `run_parameters` returns them)."""
        task = _tasks(spec)[name]
        component = spec["components"][task["componentRef"]["name"]]
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        if "container" not in executor:
            raise BackendRefusal(f"task {name!r}: importer executors are not emulated")
        container = executor["container"]
        work = os.path.join(self.state_dir, "tasks", run_id, name)
        os.makedirs(work, exist_ok=True)
        executor_input = self._executor_input(task, component, name, run_root, work, results,
                                              parameters or {})
        key = cache_key(executor_input, container, {
            k: v.get("parameterType", "") for k, v in
            component.get("outputDefinitions", {}).get("parameters", {}).items()})
        caching = task.get("cachingOptions", {}).get("enableCache", False) \
            if enable_caching is None else enable_caching
        cache = self._load_json(self._cache_path)
        if caching and key in cache:
            return {"state": "CACHED", "outputs": cache[key], "cache_key": key}
        secret_env = self._secret_env(name, component["executorLabel"])
        argv = [json.dumps(executor_input) if a == _PLACEHOLDER else a
                for a in container.get("command", []) + container.get("args", [])]
        unresolved = [a for a in argv if "{{$" in a]
        if unresolved:
            raise BackendRefusal(f"task {name!r}: placeholders not emulated: {unresolved}")
        start = time.monotonic()
        with open(os.path.join(work, "stderr.log"), "w", encoding="utf-8") as stderr:
            code = subprocess.run(argv, cwd=work, env=dict(self._task_env(), **secret_env, **{
                e["name"]: e["value"] for e in container.get("env", [])}), stdout=subprocess.DEVNULL,
                                  stderr=stderr, timeout=self.timeout).returncode
        if code != 0:
            with open(os.path.join(work, "stderr.log"), encoding="utf-8") as f:
                tail = f.read()[-4000:]
            raise TaskFailed(f"task {name!r} failed (exit {code}):\n{tail}")
        outputs = self._record_outputs(executor_input)
        if caching:
            cache[key] = outputs
            self._write_json(self._cache_path, cache)
        return {"state": "COMPLETE", "outputs": outputs, "cache_key": key,
                "seconds": round(time.monotonic() - start, 1)}

    def _secret_env(self, name, executor_label):
        """The environment a task's `secretAsEnv` entries give (driver/k8s.go); a missing secret
        or key fails the task, as the pod would not start (CreateContainerConfigError)."""
        executor = self._platform.get("platforms", {}).get("kubernetes", {}).get(
            "deploymentSpec", {}).get("executors", {}).get(executor_label, {})
        env = {}
        for entry in executor.get("secretAsEnv", []):
            secret = self.secrets.get(entry["secretName"])
            for mapping in entry["keyToEnv"]:
                if secret is None or mapping["secretKey"] not in secret:
                    raise TaskFailed(f"task {name!r}: secret {entry['secretName']!r} (key "
                                     f"{mapping['secretKey']!r}) not found: the pod cannot start")
                env[mapping["envVar"]] = secret[mapping["secretKey"]]
        return env

    def _task_env(self):
        return self.env or dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
                                + os.environ.get("PATH", ""))

    def _executor_input(self, task, component, name, run_root, work, results, run_values):
        parameters = {}
        for key, value in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in value:
                source = value["componentInputParameter"]
                if source not in run_values:
                    raise TaskFailed(f"task {name!r}: parent DAG does not have input parameter "
                                     f"{source}")
                parameters[key] = run_values[source]
                continue
            if "runtimeValue" not in value:
                raise BackendRefusal(f"task {name!r}: parameter {key!r} is neither a constant nor "
                                     "a run parameter (the only kinds emulated)")
            if "constant" not in value["runtimeValue"]:
                # The 2.0 `constantValue` (driver/driver.go `resolveInputParameter`).
                raise TaskFailed(f"task {name!r}: param runtime value spec of type "
                                 f"{sorted(value['runtimeValue'])} not implemented")
            parameters[key] = value["runtimeValue"]["constant"]
        artifacts = {}
        for key, value in task.get("inputs", {}).get("artifacts", {}).items():
            source = value["taskOutputArtifact"]
            upstream = results[source["producerTask"]]["outputs"][source["outputArtifactKey"]]
            # Reloaded from metadata with an empty schema (metadata/client.go).
            artifacts[key] = {"artifacts": [dict(upstream, type={"instanceSchema": ""})]}
        declared = dict(component.get("outputDefinitions", {}).get("artifacts", {}))
        if self.publish_logs:
            declared[EXECUTOR_LOGS] = {"artifactType": {"schemaTitle": "system.Artifact"}}
        salt = uuid.uuid4().hex         # `outputURISalt` (backend 2.4+: no overwrites on retry)
        outputs = {key: {"artifacts": [{"uri": f"{run_root}/{name}/{salt}/{key}",
                                        "type": dict(value["artifactType"]), "metadata": {}}]}
                   for key, value in declared.items()}
        return {"inputs": {"parameterValues": parameters, "artifacts": artifacts},
                "outputs": {"artifacts": outputs,
                            "outputFile": os.path.join(work, "kfp_outputs",
                                                       "output_metadata.json")}}

    def _record_outputs(self, executor_input):
        """Output artifacts as the launcher records them: new ids, metadata from the output file."""
        path = executor_input["outputs"]["outputFile"]
        produced = self._load_json(path).get("artifacts", {}) if os.path.exists(path) else {}
        recorded = {}
        for key, value in executor_input["outputs"]["artifacts"].items():
            artifact = dict(value["artifacts"][0])
            # Only uri and metadata are taken from the file (launcher_v2.go
            # `mergeRuntimeArtifacts`); the record adds `display_name` (metadata/client.go
            # `RecordArtifact`); downstream tasks get the id as the name (metadata/converter.go).
            written = produced.get(key, {}).get("artifacts", [{}])[0]
            artifact["uri"] = written.get("uri") or artifact["uri"]
            artifact["metadata"] = dict(artifact.get("metadata", {}), **written.get("metadata", {}),
                                        display_name=key)
            artifact["name"] = str(self._next_id())
            recorded[key] = artifact
        return recorded

    def _next_id(self):
        """The next metadata-store-style artifact id (a counter under `state_dir`)."""
        current = 0
        if os.path.exists(self._ids_path):
            with open(self._ids_path, encoding="utf-8") as f:
                current = int(f.read())
        with open(self._ids_path, "w", encoding="utf-8") as f:
            f.write(str(current + 1))
        return current + 1

    @staticmethod
    def _load_json(path):
        if not os.path.exists(path):
            return {}
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    @staticmethod
    def _write_json(path, value):
        with open(path + ".partial", "w", encoding="utf-8") as f:
            json.dump(value, f, sort_keys=True)
        os.replace(path + ".partial", path)
