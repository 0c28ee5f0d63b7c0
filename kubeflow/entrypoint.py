"""Pod entrypoint of every lt4rec step on Kubeflow Pipelines: repair the task's ExecutorInput, then
run TFX's own container entrypoint (`kubeflow_v2_run_executor`).

The compiled spec sets `python -m kubeflow.entrypoint` as every container's command
(`KubeflowV2DagRunnerConfig(default_commands=...)`); the arguments are TFX's. What the
open-source backend's driver sends differs from what TFX's entrypoint expects (Vertex AI
Pipelines sends the latter, so there every repair is a no-op):

1. Untyped input artifacts. The driver reloads upstream artifacts from its metadata store with an
   empty schema (`type: {instanceSchema: ""}`, backend/src/v2/metadata/client.go
   `GetOutputArtifactsByExecutionId`: "TODO(Bobgy): figure out how to get schema"); TFX picks
   the artifact class from that schema and fails (`yaml.safe_load("")` is None). Each empty type is
   filled from the component's own inputs spec (`--json_serialized_inputs_spec_args`, compiled
   into the arguments with PipelineSpec 2.1).
2. Outputs TFX does not know. Since backend 2.5.0 the driver adds an `executor-logs` output of type
   `system.Artifact` to every task (log publishing, on by default; backend/src/v2/driver/
   container.go); TFX would try to import a class `system.Artifact`. Outputs whose type is a
   `system.*` schema are the launcher's own and are removed from what TFX sees.
3. Object-store directory markers. With a `gs://` pipeline root, TF's GCS filesystem writes
   zero-byte `<dir>/` objects when it creates a directory; the launcher downloads them as empty
   files, and the next task fails on "not a directory" (kubeflow/pipelines issue 13476, TFX
   1.15-1.17 on KFP 2.16). After the executor ran, the markers under each output URI are deleted.
6. The pod's namespace. TFX's Kubernetes model server runner (InfraValidator) reads it from
   `KFP_NAMESPACE`, which the KFP v1 compiler set; KFP v2 sets only `KFP_POD_NAME` and
   `KFP_POD_UID` (backend/src/v2/compiler/argocompiler/common.go), so it is taken from the
   pod's ServiceAccount namespace file.
Besides, TensorFlow's thread pools follow the pod's cores (`LT4REC_POD_CPUS`, which the
compiled spec sets from the CPU request, or the cgroup's CPU quota when lower), not the node's.

4. ExampleGen's driver. TFX compiles the FileBasedExampleGen driver (span, version and input
   fingerprint) as a `lifecycle.preCacheCheck` hook, which only Vertex runs; the open-source
   backend ignores it. For an ExampleGen executor the driver runs here first, so the examples
   carry the same span, version and fingerprint on both backends. A run's `span` parameter
   (ExampleGen's `requested_span`, 0: the newest) becomes the range config the driver resolves.

5. S3-compatible stores. When the invocation names an s3:// or minio:// location, TensorFlow
   gets the s3:// filesystem (modules/filesystems.py) and minio:// (stock KFP's pipeline root,
   `minio://mlpipeline/v2/artifacts`) is handed to TFX as s3://; the output URIs written back
   for the launcher keep the scheme the backend gave. The process then ends without native
   teardown (tensorflow-io's S3 client aborts there, tensorflow/io#2039).
"""
import json
import os
import sys

import yaml
from absl import flags
from absl import logging

from modules import filesystems

TFX_ENTRYPOINT = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
COMMAND = ["python", "-m", "kubeflow.entrypoint"]
_INPUT_FLAG = "--json_serialized_invocation_args"
_SPEC_FLAG = "--json_serialized_inputs_spec_args"
_CLASS_FLAG = "--executor_class_path"
POD_CPUS_ENV = "LT4REC_POD_CPUS"        # the cores the pod is sized for (kubeflow/runner.py)
CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def set_kfp_namespace(environ, namespace_path=SA_NAMESPACE_FILE):
    """Set `KFP_NAMESPACE` in `environ` from the pod's ServiceAccount namespace file when it is
    unset and the file exists; returns the namespace (or None)."""
    if "KFP_NAMESPACE" not in environ and os.path.isfile(namespace_path):
        with open(namespace_path, encoding="utf-8") as f:
            environ["KFP_NAMESPACE"] = f.read().strip()
    return environ.get("KFP_NAMESPACE")


def pod_cores(environ, cpu_max_path=CGROUP_CPU_MAX):
    """The cores this pod may use: `LT4REC_POD_CPUS`, or the cgroup v2 CPU quota (rounded up)
    when that is lower or the variable is unset; None when neither says."""
    cores = [int(environ[POD_CPUS_ENV])] if environ.get(POD_CPUS_ENV, "").isdigit() else []
    try:
        with open(cpu_max_path, encoding="utf-8") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores.append(max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return min(cores) if cores else None


def size_thread_pools(cores):
    """Size TensorFlow's intra- and inter-op thread pools to `cores` (before any op runs)."""
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(cores)
    tf.config.threading.set_inter_op_parallelism_threads(cores)


def flag_value(argv, flag):
    """The value after `flag` in `argv` (or in `flag=value` form); None if absent."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1:]
    return None


def _with_flag(argv, flag, value):
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            out += [flag, value]
            skip = True
        elif arg.startswith(flag + "="):
            out.append(f"{flag}={value}")
        else:
            out.append(arg)
    return out


def _has_type(artifact_type):
    return bool(artifact_type.get("schemaTitle") or artifact_type.get("instanceSchema"))


def _is_system_type(artifact_type):
    title = artifact_type.get("schemaTitle") or (
        yaml.safe_load(artifact_type["instanceSchema"]).get("title", "")
        if artifact_type.get("instanceSchema") else "")
    return title.startswith("system.")


def repair_executor_input(executor_input, inputs_spec):
    """ExecutorInput (dict) with empty input types filled from `inputs_spec`, `system.*` outputs
    dropped. Returns (repaired dict, list of what was changed)."""
    changes = []
    declared = (inputs_spec or {}).get("artifacts", {})
    for key, artifact_list in executor_input.get("inputs", {}).get("artifacts", {}).items():
        for artifact in artifact_list.get("artifacts", []):
            if _has_type(artifact.get("type", {})):
                continue
            if key not in declared:
                raise ValueError(f"input artifact '{key}' has no type and the component's inputs "
                                 f"spec does not declare it (declared: {sorted(declared)})")
            artifact["type"] = dict(declared[key]["artifactType"])
            changes.append(f"typed input '{key}' from the inputs spec")
    outputs = executor_input.get("outputs", {}).get("artifacts", {})
    for key in [k for k, v in outputs.items()
                if any(_is_system_type(a.get("type", {})) for a in v.get("artifacts", []))]:
        del outputs[key]
        changes.append(f"dropped output '{key}' (a system.* type the launcher owns)")
    return executor_input, changes


def directory_markers(blobs, prefix):
    """The zero-byte `<dir>/` objects among `blobs` (objects with `.name`, `.size`) under `prefix`."""
    prefix = prefix.rstrip("/")
    return [blob for blob in blobs if blob.size == 0 and blob.name.endswith("/")
            and (blob.name == prefix + "/" or blob.name.startswith(prefix + "/"))]


def remove_gcs_directory_markers(uri, client=None):
    """Delete the zero-byte directory markers under a `gs://` `uri`; returns how many.

    The launcher downloads a downstream task's inputs by listing the artifact's prefix and
    writes a marker equal to the prefix as an empty file, so the artifact's files then fail
    with "not a directory" (kubeflow/pipelines issue 13476; backend/src/v2/objectstore
    `DownloadBlob`). Other schemes are left alone (TF 2.16 writes to `gs://` natively only).
    """
    if not uri.startswith("gs://"):
        return 0
    if client is None:
        from google.cloud import storage
        client = storage.Client()
    bucket_name, _, prefix = uri[len("gs://"):].partition("/")
    bucket = client.bucket(bucket_name)
    markers = directory_markers(bucket.list_blobs(prefix=prefix.rstrip("/")), prefix)
    for blob in markers:
        blob.delete()
    return len(markers)


def _is_example_gen(class_path):
    from tfx.components.example_gen import base_example_gen_executor
    from tfx.utils import import_utils
    return issubclass(import_utils.import_class_by_path(class_path),
                      base_example_gen_executor.BaseExampleGenExecutor)


def _run_example_gen_driver(argv, executor_input):
    """Run TFX's ExampleGen driver; returns `executor_input` with its outputs' new metadata.

    The driver writes span, version, fingerprint and the resolved input config to the output
    file, which TFX's entrypoint reads back as execution properties; the output artifacts'
    metadata (span, fingerprint) are copied into the ExecutorInput, as Vertex does.
    """
    from tfx.dsl.io import fileio
    from tfx.orchestration.kubeflow.v2.file_based_example_gen import driver
    from components.split_example_gen import spans
    inputs = executor_input["inputs"]
    inputs["parameterValues"] = spans.with_requested_span(inputs.get("parameterValues", {}))
    argv = _with_flag(argv, _INPUT_FLAG, json.dumps(executor_input))
    driver.main(driver._parse_flags(argv))  # pylint: disable=protected-access
    with fileio.open(executor_input["outputs"]["outputFile"]) as f:
        written = json.loads(f.read()).get("artifacts", {})
    for key, artifact_list in executor_input["outputs"]["artifacts"].items():
        for artifact, produced in zip(artifact_list["artifacts"],
                                      written.get(key, {}).get("artifacts", [])):
            artifact["metadata"] = dict(artifact.get("metadata", {}), **produced.get("metadata", {}))
    return executor_input


def restore_minio_uris(output_file, executor_input):
    """Rewrite the output URIs in the ExecutorOutput `output_file` that TFX saw as s3:// back to
    the minio:// URIs `executor_input` (as the backend sent it) gave them."""
    given = {key: value["artifacts"][0]["uri"] for key, value in
             executor_input["outputs"].get("artifacts", {}).items() if value.get("artifacts")}
    with open(output_file, encoding="utf-8") as f:
        output = json.load(f)
    for key, value in output.get("artifacts", {}).items():
        for artifact in value.get("artifacts", []):
            if given.get(key, "").startswith("minio://") and \
                    artifact.get("uri") == filesystems.minio_as_s3(given[key]):
                artifact["uri"] = given[key]
    with open(output_file, "w", encoding="utf-8") as f:
        json.dump(output, f)


def main(argv):
    """Repair the ExecutorInput in `argv`, run TFX's entrypoint, clean the outputs' markers."""
    logging.set_verbosity(logging.INFO)
    set_kfp_namespace(os.environ)
    cores = pod_cores(os.environ)
    if cores:
        size_thread_pools(cores)
        logging.info("lt4rec entrypoint: TensorFlow thread pools sized to the pod's %d cores",
                     cores)
    argv = list(argv)
    sent = json.loads(flag_value(argv, _INPUT_FLAG))
    s3 = filesystems.uses_s3(*argv)
    if s3:
        filesystems.register_s3()
        argv = [filesystems.minio_as_s3(arg) for arg in argv]
    raw_spec = flag_value(argv, _SPEC_FLAG)
    executor_input, changes = repair_executor_input(
        json.loads(flag_value(argv, _INPUT_FLAG)), json.loads(raw_spec) if raw_spec else None)
    for change in changes:
        logging.info("lt4rec entrypoint: %s", change)
    argv = _with_flag(argv, _INPUT_FLAG, json.dumps(executor_input))
    if _is_example_gen(flag_value(argv, _CLASS_FLAG)):
        executor_input = _run_example_gen_driver(argv, executor_input)
        argv = _with_flag(argv, _INPUT_FLAG, json.dumps(executor_input))
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor
    kubeflow_v2_run_executor.main(kubeflow_v2_run_executor._parse_flags(argv))  # pylint: disable=protected-access
    for key, artifact_list in executor_input["outputs"].get("artifacts", {}).items():
        for artifact in artifact_list.get("artifacts", []):
            if remove_gcs_directory_markers(artifact["uri"]):
                logging.info("lt4rec entrypoint: removed directory markers under '%s'", key)
    if s3 and os.path.exists(sent["outputs"]["outputFile"]):
        restore_minio_uris(sent["outputs"]["outputFile"], sent)


def run(argv):
    """`main`, then the process's end: as usual, or, when the task is on S3 (s3:// registered),
    without native teardown and with the status Python would have given (1 after an error,
    whose traceback is logged)."""
    if not filesystems.uses_s3(*argv):
        main(argv)
        return
    code = 0
    try:
        main(argv)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    except Exception:  # pylint: disable=broad-except
        logging.exception("lt4rec entrypoint: the executor failed")
        code = 1
    filesystems.exit_skipping_native_teardown(code)


if __name__ == "__main__":
    flags.FLAGS.mark_as_parsed()        # TFX's arguments are not absl flags
    run(sys.argv[1:])
