"""Compile the lt4rec pipeline to a Kubeflow Pipelines v2 spec with KubeflowV2DagRunner.

The same `create_pipeline` as the local runner; the `kubeflow` config section supplies the image,
pipeline root, data and serving locations, Beam arguments and GPUs (requested by the two trainers
only). Compile it with the tfx CLI (TFX 1.16's `--engine=kubeflow` imports the removed KFP-v1
runner; `--engine=vertex` compiles the same KFP v2 spec offline):

    LT4REC_CONFIG=my.yaml tfx pipeline create --engine=vertex --pipeline_path=kubeflow/runner.py

or with `lt4rec kubeflow compile`; submit with `lt4rec kubeflow submit`.
"""
import os

from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx

from pipeline.config import Config
from pipeline.pipeline import create_pipeline

TRAINERS = ("TicketSearch", "MTLTrainer")
DEFAULT_OUTPUT = "lt4rec_pipeline.json"
_RESOURCES = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec


def build(config):
    """The pipeline object for Kubeflow: cluster locations, GPUs on the trainers only."""
    kf = config.kubeflow
    pipeline = create_pipeline(pipeline_root=kf.pipeline_root, data_root=kf.data_root,
                               serving_dir=kf.serving_dir, config=config,
                               beam_pipeline_args=kf.beam_pipeline_args,
                               schema_path=kf.schema_path)
    if kf.trainer_gpus:
        for component in pipeline.components:
            if component.id in TRAINERS:
                component.with_platform_config(_RESOURCES(
                    accelerator=_RESOURCES.AcceleratorConfig(type=kf.gpu_type,
                                                             count=kf.trainer_gpus)))
    return pipeline


def compile_spec(config, output_dir=".", output_filename=DEFAULT_OUTPUT):
    """Write the KFP v2 pipeline spec JSON; returns its path."""
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=config.kubeflow.image),
        output_dir=output_dir, output_filename=output_filename)
    runner.run(build(config))
    return os.path.join(output_dir, output_filename)


if __name__ == "__main__":
    # Run by the tfx CLI (which patches the runner's output location) or directly.
    compile_spec(Config.load(os.environ.get("LT4REC_CONFIG")))
