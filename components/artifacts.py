"""Custom artifact types and spec parts shared by the custom trainer components."""
from tfx.types import artifact, component_spec, standard_artifacts


class TaskMasks(artifact.Artifact):
    """Per-task lottery-ticket masks (`masks/<task>.npz`), θ0 (`theta0/`), the search report."""

    # Kubeflow v2 recovers custom artifact classes from the type name, read as "<module>.<Class>"
    # (one dot): `components.TaskMasks` is importable because components/__init__.py exports it.
    TYPE_NAME = "components.TaskMasks"


# Execution parameters of both trainers.
TRAINER_PARAMETERS = {
    "config": component_spec.ExecutionParameter(type=str),
    # Changes whenever our code changes, so TFX's cache never reuses stale results.
    "code_fingerprint": component_spec.ExecutionParameter(type=str, optional=True),
}
# The Transform outputs (and schema) both trainers read.
TRANSFORMED_INPUTS = {
    "examples": component_spec.ChannelParameter(type=standard_artifacts.Examples),
    "transform_graph": component_spec.ChannelParameter(type=standard_artifacts.TransformGraph),
    "schema": component_spec.ChannelParameter(type=standard_artifacts.Schema),
}
