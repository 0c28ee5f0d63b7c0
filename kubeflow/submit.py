"""Upload and run a compiled lt4rec spec on a Kubeflow Pipelines 2.x endpoint."""
import json
import os
import tempfile

import kfp
import yaml

from pipeline.config import ConfigError


def kfp_package(spec_path, out_dir):
    """Write the PipelineSpec of a TFX-compiled spec (JSON job) as the YAML package kfp uploads."""
    with open(spec_path, encoding="utf-8") as f:
        job = json.load(f)
    path = os.path.join(out_dir, "pipeline.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(job.get("pipelineSpec", job), f, sort_keys=False)
    return path, job.get("runtimeConfig", {}).get("gcsOutputDirectory")


def submit(spec_path, config, run_name=None):
    """Create a run of `spec_path` on `config.kubeflow.endpoint`; returns the run id.

    The pipeline root is `kubeflow.pipeline_root` (else the one compiled into the spec).
    """
    kf = config.kubeflow
    if not kf.endpoint:
        raise ConfigError("invalid configuration: kubeflow.endpoint is not set "
                          "(use --endpoint or the config file)")
    if not os.path.isfile(spec_path):
        raise ConfigError(f"invalid configuration: pipeline spec not found: {spec_path} "
                          "(compile it first)")
    client = kfp.Client(host=kf.endpoint, namespace=kf.namespace)
    with tempfile.TemporaryDirectory() as tmp:
        package, compiled_root = kfp_package(spec_path, tmp)
        result = client.create_run_from_pipeline_package(
            package, arguments={}, run_name=run_name or config.pipeline_name,
            experiment_name=kf.experiment, namespace=kf.namespace,
            pipeline_root=kf.pipeline_root or compiled_root, enable_caching=True)
    return result.run_id
