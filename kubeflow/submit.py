"""Upload and run a compiled lt4rec spec on a Kubeflow Pipelines 2.x endpoint."""
import kfp

from pipeline.config import ConfigError


def submit(spec_path, config, run_name=None):
    """Create a run of `spec_path` on `config.kubeflow.endpoint`; returns the run id."""
    kf = config.kubeflow
    if not kf.endpoint:
        raise ConfigError("invalid configuration: kubeflow.endpoint is not set "
                          "(use --endpoint or the config file)")
    client = kfp.Client(host=kf.endpoint, namespace=kf.namespace)
    result = client.create_run_from_pipeline_package(
        spec_path, arguments={}, run_name=run_name or config.pipeline_name,
        experiment_name=kf.experiment, namespace=kf.namespace, pipeline_root=kf.pipeline_root,
        enable_caching=True)
    return result.run_id
