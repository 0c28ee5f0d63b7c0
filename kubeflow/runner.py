"""Compile the lt4rec pipeline to a Kubeflow Pipelines spec with KubeflowV2DagRunner.

The same `create_pipeline` as the local runner; the `kubeflow` config section supplies the image,
pipeline root, data and serving locations, Beam arguments, each component's CPU and memory
requests and limits, and GPUs (requested by the two trainers only). The spec is PipelineSpec
2.1.0 (the only version the open-source backend accepts), every container runs
`kubeflow/entrypoint.py`, and the steps reading outside the artifact graph are never cached, so
it runs on open-source Kubeflow Pipelines 2.x and on Vertex AI Pipelines (README, "Running on
Kubeflow"). Compile it with the tfx CLI (TFX 1.16's `--engine=kubeflow` imports the removed
KFP-v1 runner; `--engine=vertex` compiles the same KFP v2 spec offline):

    LT4REC_CONFIG=my.yaml tfx pipeline create --engine=vertex --pipeline_path=kubeflow/runner.py

or with `lt4rec kubeflow compile`; submit with `lt4rec kubeflow submit`.
"""
import json
import math
import os

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx
from tfx.orchestration import data_types
from tfx.proto import infra_validator_pb2
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.io import fileio

from kubeflow import entrypoint
from modules import filesystems
from modules.config import Config, ConfigError
from pipeline.pipeline import NEVER_CACHED, RUN_PARAMETERS, create_pipeline

TRAINERS = ("TicketSearch", "MTLTrainer")
DEFAULT_OUTPUT = "lt4rec_pipeline.json"
S3_WORKER_PLUGIN = "modules.s3_worker_plugin"
# Never served from KFP's cache. Its key covers input artifact ids, parameters, image and
# command only (backend/src/v2/cacheutils/cache.go), and the backend skips ExampleGen's
# fingerprint hook: a rerun on new files under the same data root would get yesterday's
# examples; an edited schema file in a rebuilt image under the same tag, yesterday's schema.
NEVER_CACHED_ON_KUBEFLOW = ("ImportExampleGen", "ImportSchemaGen") + NEVER_CACHED
_RESOURCES = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec


def uses_s3(kf):
    """True if any location in the `kubeflow` section is on an S3-compatible store."""
    return filesystems.uses_s3(kf.pipeline_root, kf.data_root, kf.serving_dir,
                               kf.statistics_dir)


def build(config):
    """The pipeline object for Kubeflow: cluster locations, GPUs on the trainers only."""
    kf = config.kubeflow
    beam_args = list(kf.beam_pipeline_args)
    if uses_s3(kf):
        beam_args.append(f"--beam_plugin={S3_WORKER_PLUGIN}")
    pipeline = create_pipeline(pipeline_root=kf.pipeline_root, data_root=kf.data_root,
                               serving_dir=kf.serving_dir, config=config,
                               beam_pipeline_args=beam_args,
                               schema_path=kf.schema_path, statistics_dir=kf.statistics_dir,
                               run_parameters=True,
                               infra_validation=infra_validation(kf, config.pipeline_name))
    # A positive --direct_num_workers in kubeflow.beam_pipeline_args is the user's choice;
    # 0 (a worker per core of the node) becomes each Beam step's CPU request.
    chosen_workers = [arg for arg in kf.beam_pipeline_args
                      if arg.startswith("--direct_num_workers=") and arg.split("=", 1)[1] != "0"]
    ids = {component.id for component in pipeline.components}
    unknown = sorted(set(kf.resources) - ids - {"default"})
    if unknown:
        raise ConfigError(f"invalid configuration: kubeflow.resources names unknown component(s) "
                          f"{unknown}; components: {sorted(ids)} (or 'default')")
    for component in pipeline.components:
        component.with_platform_config(resource_spec(kf, component.id))
        cpus = pod_cpus(component.platform_config)
        if cpus and isinstance(component, base_beam_component.BaseBeamComponent) and \
                not chosen_workers:
            # after the pipeline's own arguments, so it overrides their worker count
            component.with_beam_pipeline_args([f"--direct_num_workers={cpus}"])
    return pipeline


def infra_validation(kf, model_name):
    """The InfraValidator's specs (`create_components`): TF Serving (`kubeflow.serving_image`,
    `serving_tag`) on Kubernetes, loading the candidate within `infra_validation_seconds` and
    scoring 10 eval examples through `serving_default`, 3 tries; None when
    `kubeflow.infra_validation` is off."""
    if not kf.infra_validation:
        return None
    seconds = kf.infra_validation_seconds
    return {
        "serving_spec": infra_validator_pb2.ServingSpec(
            tensorflow_serving=infra_validator_pb2.TensorFlowServing(
                image_name=kf.serving_image, tags=[kf.serving_tag]),
            kubernetes=infra_validator_pb2.KubernetesConfig(
                service_account_name=kf.serving_service_account,
                active_deadline_seconds=2 * seconds),     # a pod left behind ends by itself
            model_name=model_name),
        "validation_spec": infra_validator_pb2.ValidationSpec(
            max_loading_time_seconds=seconds, num_tries=3),
        "request_spec": infra_validator_pb2.RequestSpec(
            tensorflow_serving=infra_validator_pb2.TensorFlowServingRequestSpec(
                signature_names=["serving_default"]),
            split_name="eval", num_examples=10),
    }


def pod_cpus(resources):
    """The cores a pod with this ResourceSpec is sized for: its CPU request (else its limit),
    rounded up; None when it sets neither. Beam's DirectRunner and TensorFlow would otherwise
    start a worker or thread per core of the node (32-96), not of the pod."""
    cores = resources.cpu_request or resources.cpu_limit if resources else 0
    return max(1, math.ceil(cores)) if cores else None


def resource_spec(kf, component_id):
    """The pod ResourceSpec of one component: its `kubeflow.resources` (else "default") CPU
    cores and memory GB, and the GPUs for the trainers."""
    values = kf.resources.get(component_id, kf.resources.get("default", {}))
    spec = _RESOURCES(**{key: float(value) for key, value in values.items()})
    if kf.trainer_gpus and component_id in TRAINERS:
        spec.accelerator.CopyFrom(_RESOURCES.AcceleratorConfig(type=kf.gpu_type,
                                                               count=kf.trainer_gpus))
    return spec


def container_env(kf, component):
    """A component's container environment: its pod's cores (`LT4REC_POD_CPUS`) and, with a
    location on S3, the endpoint and region of the S3 clients (credentials come from
    `kubeflow.s3_secret` through the platform spec, kubeflow/submit.py)."""
    env = {}
    cpus = pod_cpus(component.platform_config)
    if cpus:
        env[entrypoint.POD_CPUS_ENV] = str(cpus)
    if uses_s3(kf):
        env.update(filesystems.s3_env(kf.s3_endpoint, kf.s3_region))
    return [{"name": name, "value": value} for name, value in sorted(env.items())]


def declare_run_parameters(pipeline_spec, pipeline):
    """Give each run parameter of `pipeline_spec` (its root's input parameters, which TFX
    declares without a value) the default and description of `pipeline`'s RuntimeParameter:
    a run that does not set it gets the compiled value (the backend refuses a parameter with
    neither, apiserver/template/v2_template.go)."""
    declared = pipeline_spec["root"].get("inputDefinitions", {}).get("parameters", {})
    for component in pipeline.components:
        for value in component.exec_properties.values():
            if isinstance(value, data_types.RuntimeParameter) and value.name in declared:
                declared[value.name].update(defaultValue=value.default,
                                            description=RUN_PARAMETERS[value.name])


class KubeflowRunner(tfx.orchestration.experimental.KubeflowV2DagRunner):
    """KubeflowV2DagRunner whose job spec gives the run parameters their defaults, keeps the
    `NEVER_CACHED_ON_KUBEFLOW` steps uncached and gives every container its component's
    ResourceSpec (TFX's step builder drops it for ExampleGen, whose container it builds
    separately).

    The tfx CLI patches the base class's `run` (and its output location); this `run` goes
    through it and writes the finished spec where it pointed.
    """

    def __init__(self, kubeflow_config, **kwargs):
        super().__init__(**kwargs)
        self._kubeflow = kubeflow_config

    def run(self, pipeline, parameter_values=None, write_out=True):
        job = super().run(pipeline, parameter_values, write_out=False)
        if job is None:                  # the CLI's patcher skipped the real run
            return None
        declare_run_parameters(job["pipelineSpec"], pipeline)
        tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
        for name in NEVER_CACHED_ON_KUBEFLOW:
            tasks[name]["cachingOptions"] = {"enableCache": False}
        executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
        for component in pipeline.components:
            container = executors.get(f"{component.id}_executor", {}).get("container")
            if container is not None and component.platform_config and \
                    "resources" not in container:
                container["resources"] = json_format.MessageToDict(component.platform_config)
            env = container_env(self._kubeflow, component) if container is not None else None
            if env:
                container["env"] = env
        if write_out:
            fileio.makedirs(self._output_dir)
            with fileio.open(os.path.join(self._output_dir, self._output_filename), "w") as f:
                f.write(json.dumps(job, sort_keys=True, indent=2))
        return job


def compile_spec(config, output_dir=".", output_filename=DEFAULT_OUTPUT):
    """Write the pipeline job JSON (PipelineSpec 2.1.0, our pod entrypoint); returns its path."""
    runner = KubeflowRunner(
        config.kubeflow, config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=config.kubeflow.image, default_commands=entrypoint.COMMAND,
            use_pipeline_spec_2_1=True),
        output_dir=output_dir, output_filename=output_filename)
    runner.run(build(config))
    return os.path.join(output_dir, output_filename)


if __name__ == "__main__":
    # Run by the tfx CLI (which patches the runner's output location) or directly.
    compile_spec(Config.load(os.environ.get("LT4REC_CONFIG")))
