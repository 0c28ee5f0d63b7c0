"""Executor of InfraValidator: TFX's (requests built from the eval examples, retries, the
InfraBlessing the pusher checks) with a model server pod that stages the candidate itself.

TFX's Kubernetes runner cannot serve the candidate on Kubeflow Pipelines 2.x as it is: TF
Serving needs `<base>/<name>/<version>/`, so TFX copies the model into the executor's temporary
directory, which the open-source backend puts on the executor pod's own disk (next to its
output file, `/tmp/kfp_outputs/.temp`) where the model server pod cannot read it; and the stock
TF Serving image reads no s3:// (since 2.7). Here the model server pod gets an init container
(our image, with the executor container's environment: object-store endpoint, keys) that copies
the candidate from its artifact URI into an emptyDir volume, which TF Serving serves. TFX's
runner also reads the server's log from a container of the executor's name; this one reads the
init container's and the server's logs.
"""
import time

from absl import logging
from kubernetes import client as k8s_client
from tfx.components.infra_validator import executor as tfx_executor
from tfx.components.infra_validator.model_server_runners import kubernetes_runner
from tfx.utils import path_utils
from tfx.utils.model_paths import tf_serving_flavor

STAGING_VOLUME = "staged-model"
STAGED_BASE = "/models"                  # in the model server pod
STAGE_CONTAINER = "stage-model"
SERVER_CONTAINER = "model-server"        # TFX's name for the TF Serving container
STAGE_COMMAND = ["python", "-m", "components.infra_validator.stage_model"]
POLLING_SECONDS = 1


class StagingKubernetesRunner(kubernetes_runner.KubernetesRunner):
    """TFX's KubernetesRunner whose pod stages `source` (a SavedModel directory URI) into its
    volume at `model_path` before TF Serving starts."""

    def __init__(self, source, **kwargs):
        super().__init__(**kwargs)
        self._source = source

    def _BuildPodManifest(self):
        pod = super()._BuildPodManifest()
        mount = k8s_client.V1VolumeMount(name=STAGING_VOLUME, mount_path=STAGED_BASE)
        executor = self._executor_container
        pod.spec.volumes = list(pod.spec.volumes or []) + [k8s_client.V1Volume(
            name=STAGING_VOLUME, empty_dir=k8s_client.V1EmptyDirVolumeSource())]
        pod.spec.init_containers = [k8s_client.V1Container(
            name=STAGE_CONTAINER, image=executor.image, working_dir=executor.working_dir,
            command=STAGE_COMMAND + [self._source, self._model_path], env=executor.env,
            volume_mounts=[mount])]
        server = pod.spec.containers[0]
        server.volume_mounts = list(server.volume_mounts or []) + [mount]
        return pod

    def GetLogs(self):
        """The staging and the model server containers' logs (what exists of them); None
        before the pod was created."""
        if not self._pod_name:
            return None
        logs = []
        for container in (STAGE_CONTAINER, SERVER_CONTAINER):
            try:
                text = self._k8s_core_api.read_namespaced_pod_log(
                    name=self._pod_name, namespace=self._namespace, container=container)
            except Exception as error:  # pylint: disable=broad-except
                text = f"(no log: {error})"
            logs.append(f"--- {container} ---\n{text}")
        return "\n".join(logs)


class Executor(tfx_executor.Executor):
    """TFX's InfraValidator executor with `StagingKubernetesRunner`."""

    def _PrepareModelPath(self, model, serving_spec):
        """Where the model server pod's init container stages the candidate (nothing is copied
        here)."""
        self._source = path_utils.serving_model_path(model.uri,
                                                     path_utils.is_old_model_artifact(model))
        return tf_serving_flavor.make_model_path(STAGED_BASE, serving_spec.model_name, 1)

    def _ValidateOnce(self, model_path, serving_binary, serving_spec, validation_spec,
                      requests):
        """Start the model server pod, wait until the candidate loads, send `requests`; raise
        on any failure (TFX's retry loop counts it), logging the pod's logs."""
        deadline = time.time() + validation_spec.max_loading_time_seconds
        runner = StagingKubernetesRunner(self._source, model_path=model_path,
                                         serving_binary=serving_binary,
                                         serving_spec=serving_spec)
        try:
            runner.Start()
            runner.WaitUntilRunning(deadline)
            client = serving_binary.MakeClient(runner.GetEndpoint())
            client.WaitUntilModelLoaded(deadline, polling_interval_sec=POLLING_SECONDS)
            if requests:
                client.SendRequests(requests)
            logging.info("InfraValidator: %s loaded the candidate and answered %d requests",
                         serving_binary.image, len(requests))
        except Exception:
            logging.error("InfraValidator: the model server failed; its pod's logs:\n%s",
                          runner.GetLogs())
            raise
        finally:
            runner.Stop()
