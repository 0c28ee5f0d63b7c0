"""InfraValidator on Kubernetes against a fake Kubernetes API whose "kubelet" runs the model server
pod on this machine: the init container's command (our `stage_model`) as a subprocess into a
local directory standing for the pod's volume, then a stand-in for TF Serving's gRPC API
(ModelService.GetModelStatus, PredictionService.Predict) on what was staged, scoring through
`ServingSession` (TF Serving's loading: by tag, through the SignatureDef). TFX's own executor
code builds the requests from the eval examples, talks to the server and writes the blessing.
"""
import concurrent.futures
import json
import os
import re
import socket
import subprocess
import sys
import threading
import http.server

import grpc
import pytest
from tensorflow_serving.apis import (get_model_status_pb2, model_service_pb2_grpc,
                                     prediction_service_pb2_grpc)
from tfx.components.infra_validator import serving_bins
from tfx.types import standard_artifacts

from components.infra_validator.executor import (SERVER_CONTAINER, STAGE_CONTAINER,
                                                 STAGED_BASE, Executor)
from conftest import s3_process_env

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMESPACE = "team-a"
EXECUTOR_POD = "lt4rec-infravalidator-driver-7x"
IMAGE = "registry.example.com/ml/lt4rec-tfx:abc123"
SECRET = {"name": "mlpipeline-minio-artifact", "key": "accesskey"}
_AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


class _StandInServing(model_service_pb2_grpc.ModelServiceServicer,
                      prediction_service_pb2_grpc.PredictionServiceServicer):
    """TF Serving's gRPC API on one model directory (its versions below it)."""

    def __init__(self, base_path):
        from pipeline.serving import ServingSession
        self.session = ServingSession(base_path)

    def GetModelStatus(self, request, context):  # noqa: N802 (gRPC's naming)
        return get_model_status_pb2.GetModelStatusResponse(model_version_status=[
            get_model_status_pb2.ModelVersionStatus(version=1, state=_AVAILABLE)])

    def Predict(self, request, context):  # noqa: N802
        _FakeCluster.state["queried"] += len(request.inputs["examples"].string_val)
        return self.session.predict(request)


class _FakeCluster(http.server.BaseHTTPRequestHandler):
    """The Kubernetes API calls of the runner, with pods run here (see the module docstring)."""

    state = {}

    def _reply(self, body, status=200):
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        path = self.path.split("?")[0]
        name = path.rsplit("/", 2)[-2] if path.endswith("/log") else path.rsplit("/", 1)[-1]
        if name == EXECUTOR_POD:
            return self._reply(executor_pod())
        pod = self.state["pods"][name]
        if path.endswith("/log"):
            container = re.search(r"container=([\w-]+)", self.path).group(1)
            self.state["log_reads"].append(container)
            return self._reply(pod["logs"].get(container, ""))
        return self._reply(dict(pod["manifest"], status=pod["status"]))

    def do_POST(self):  # noqa: N802
        manifest = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name = f"{manifest['metadata']['generateName']}{len(self.state['pods'])}"
        manifest["metadata"]["name"] = name
        self.state["pods"][name] = run_pod(manifest)
        self._reply(manifest, 201)

    def do_DELETE(self):  # noqa: N802
        name = self.path.split("?")[0].rsplit("/", 1)[-1]
        pod = self.state["pods"][name]
        if pod.get("server"):
            pod["server"].stop(0)
        self.state["deleted"].append(name)
        self._reply({"kind": "Status", "apiVersion": "v1", "status": "Success"})

    def log_message(self, *args):
        pass


def executor_pod():
    """The pod the executor runs in, as the API returns it."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": EXECUTOR_POD, "namespace": NAMESPACE, "uid": "uid-7"},
            "spec": {"serviceAccountName": "pipeline-runner", "containers": [{
                "name": "main", "image": IMAGE, "workingDir": "/pipeline",
                "env": [{"name": "S3_ENDPOINT", "value": "http://minio-service.kubeflow:9000"},
                        {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": SECRET}}]}]}}


def _free_loopback_address(port):
    """A 127.0.0.x address whose `port` is free (TFX's client dials the pod IP on 8500)."""
    for last in range(20, 250):
        with socket.socket() as probe:
            try:
                probe.bind((f"127.0.0.{last}", port))
                return f"127.0.0.{last}"
            except OSError:
                continue
    raise RuntimeError(f"no loopback address with port {port} free")


def run_pod(manifest):
    """Run a model server pod here: its init container (volume at a local directory), then the
    stand-in server on what it staged. Returns the pod's record (status, logs, server)."""
    volume = os.path.join(_FakeCluster.state["tmp"], manifest["metadata"]["name"])
    here = {STAGED_BASE: volume, "/pipeline": ROOT}

    def local(text):
        for pod_path, path in here.items():
            if text.startswith(pod_path):
                return path + text[len(pod_path):]
        return text

    (init,) = manifest["spec"]["initContainers"]
    command = [sys.executable if arg == "python" else local(arg) for arg in init["command"]]
    env = dict(os.environ, **{e["name"]: e["value"] for e in init["env"] if "value" in e})
    staged = subprocess.run(command, cwd=local(init["workingDir"]), env=env,
                            capture_output=True, text=True)
    logs = {STAGE_CONTAINER: staged.stderr}
    if staged.returncode:
        return {"manifest": manifest, "logs": logs, "status": {"phase": "Failed"}}
    server_env = {e["name"]: e["value"] for e in manifest["spec"]["containers"][0]["env"]}
    address = _free_loopback_address(serving_bins.TensorFlowServing._DEFAULT_GRPC_PORT)
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    # The TF Serving image serves ${MODEL_BASE_PATH}/${MODEL_NAME} (tf_serving_entrypoint.sh).
    servicer = _StandInServing(local(f"{server_env['MODEL_BASE_PATH']}/"
                                     f"{server_env['MODEL_NAME']}"))
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(servicer, server)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"{address}:8500")
    server.start()
    return {"manifest": manifest, "logs": logs, "server": server,
            "status": {"phase": "Running", "podIP": address}}


def _self_signed(directory):
    """(certificate, key) files of a TLS certificate for 127.0.0.1, its own CA."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                   .add_extension(x509.SubjectAlternativeName(
                       [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
                   .sign(key, hashes.SHA256()))
    paths = (os.path.join(directory, "ca.crt"), os.path.join(directory, "tls.key"))
    with open(paths[0], "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """The fake cluster's API on https://127.0.0.1, seen from inside a KFP v2 pod: the in-cluster
    environment and ServiceAccount files (token, CA, namespace), `KFP_POD_NAME` as the backend
    sets it and `KFP_NAMESPACE` as our entrypoint sets it; yields the cluster's state."""
    import ssl
    from kubernetes.config import incluster_config
    from tfx.utils import kube_utils
    from kubeflow import entrypoint
    _FakeCluster.state = {"pods": {}, "deleted": [], "log_reads": [], "queried": 0,
                          "tmp": str(tmp_path)}
    account = tmp_path / "serviceaccount"
    account.mkdir()
    certificate, key = _self_signed(str(account))
    (account / "token").write_text("sa-token")
    (account / "namespace").write_text(NAMESPACE)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeCluster)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificate, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(account / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", certificate)
    monkeypatch.setattr(kube_utils, "_factory", kube_utils._KubernetesClientFactory())
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.server_port))
    monkeypatch.setenv("KFP_POD_NAME", EXECUTOR_POD)
    environ = {}                                          # as the entrypoint sets it
    assert entrypoint.set_kfp_namespace(environ, str(account / "namespace")) == NAMESPACE
    monkeypatch.setenv("KFP_NAMESPACE", environ["KFP_NAMESPACE"])
    yield _FakeCluster.state
    server.shutdown()
    server.server_close()


def _validate(model, examples, tmp_path, tries=1):
    """The executor's blessing of `model`, with the compiled pipeline's specs (LOAD_AND_QUERY
    on `examples`; without them LOAD_ONLY) and `tries` tries of 60 s."""
    from kubeflow.runner import infra_validation
    from modules.config import Config
    from tfx.utils import proto_utils
    specs = infra_validation(Config().kubeflow, "lt4rec")
    specs["validation_spec"].max_loading_time_seconds = 60
    specs["validation_spec"].num_tries = tries
    if examples is None:
        del specs["request_spec"]
    blessing = standard_artifacts.InfraBlessing()
    blessing.uri = str(tmp_path / "blessing")
    os.makedirs(blessing.uri)
    Executor().Do({"model": [model], "examples": [examples] if examples else []},
                  {"blessing": [blessing]},
                  {key: proto_utils.proto_to_json(value) for key, value in specs.items()})
    return blessing


def test_the_candidate_loads_in_tf_serving_and_answers_eval_examples(tiny_run, cluster,
                                                                     tmp_path):
    outputs = tiny_run["outputs"]
    model, examples = standard_artifacts.Model(), standard_artifacts.Examples()
    model.set_mlmd_artifact(outputs["MTLTrainer"]["model"][0])           # as MLMD holds them
    examples.set_mlmd_artifact(outputs["ImportExampleGen"]["examples"][0])
    blessing = _validate(model, examples, tmp_path)
    assert blessing.get_int_custom_property("blessed") == 1
    assert os.listdir(blessing.uri) == ["INFRA_BLESSED"]
    assert cluster["queried"] == 10                      # eval examples scored by the server
    (name,) = cluster["pods"]
    pod = cluster["pods"][name]["manifest"]
    assert cluster["deleted"] == [name]                          # the server pod is gone
    # The server pod: owned by the executor's pod, its service account, an end of its own.
    assert pod["metadata"]["ownerReferences"][0]["name"] == EXECUTOR_POD
    assert pod["spec"]["serviceAccountName"] == "pipeline-runner"
    assert pod["spec"]["activeDeadlineSeconds"] == 1200
    assert pod["spec"]["volumes"] == [{"name": "staged-model", "emptyDir": {}}]
    (init,) = pod["spec"]["initContainers"]
    (server,) = pod["spec"]["containers"]
    # Staged by our image with the executor's environment (its object-store endpoint, and its
    # keys still as a secret reference), from the model's URI into the volume TF Serving reads.
    assert (init["image"], init["workingDir"]) == (IMAGE, "/pipeline")
    assert init["command"][-2:] == [os.path.join(model.uri, "Format-Serving"),
                                    f"{STAGED_BASE}/lt4rec/1"]
    assert {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": SECRET}} in init["env"]
    assert server["image"] == "tensorflow/serving:2.16.1"
    env = {e["name"]: e["value"] for e in server["env"]}
    assert (env["MODEL_BASE_PATH"], env["MODEL_NAME"]) == (STAGED_BASE, "lt4rec")
    assert init["volumeMounts"] == server["volumeMounts"] == [
        {"name": "staged-model", "mountPath": STAGED_BASE}]


def test_a_candidate_that_cannot_be_staged_is_not_blessed_and_its_pods_are_removed(
        cluster, tmp_path):
    """Every try fails (the init container finds no SavedModel): not blessed, each pod deleted,
    and the staging log is read for the executor's log (LOAD_ONLY: no examples to query)."""
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    os.makedirs(os.path.join(model.uri, "Format-Serving"))
    examples = None
    blessing = _validate(model, examples, tmp_path, tries=2)
    assert blessing.get_int_custom_property("blessed") == 0
    assert os.listdir(blessing.uri) == ["INFRA_NOT_BLESSED"]
    assert len(cluster["pods"]) == 2 and sorted(cluster["deleted"]) == sorted(cluster["pods"])
    assert all("no SavedModel to stage" in pod["logs"][STAGE_CONTAINER]
               for pod in cluster["pods"].values())
    assert cluster["log_reads"] == [STAGE_CONTAINER, SERVER_CONTAINER] * 2
    assert cluster["queried"] == 0


def test_stage_model_copies_a_saved_model_from_s3(s3_server, tmp_path):
    """The init container on an S3 store (KFP's MinIO: minio:// is read as s3://)."""
    endpoint, client = s3_server
    client.create_bucket(Bucket="staging")
    client.put_object(Bucket="staging", Key="model/Format-Serving/saved_model.pb", Body=b"pb")
    client.put_object(Bucket="staging", Key="model/Format-Serving/variables/variables.index",
                      Body=b"index")
    command = [sys.executable, "-m", "components.infra_validator.stage_model"]
    staged = subprocess.run(command + ["minio://staging/model/Format-Serving",
                                       str(tmp_path / "lt4rec" / "1")],
                            cwd=ROOT, env=s3_process_env(endpoint), capture_output=True, text=True)
    assert staged.returncode == 0, staged.stderr[-2000:]
    assert (tmp_path / "lt4rec" / "1" / "saved_model.pb").read_bytes() == b"pb"
    assert (tmp_path / "lt4rec" / "1" / "variables" / "variables.index").read_bytes() == b"index"
    missing = subprocess.run(command + ["s3://staging/nothing", str(tmp_path / "x")], cwd=ROOT,
                             env=s3_process_env(endpoint), capture_output=True, text=True)
    assert missing.returncode == 1
    assert "no SavedModel to stage: s3://staging/nothing/saved_model.pb" in missing.stderr
