"""Custom artifact types shared by the custom components."""
from tfx.types import artifact


class TaskMasks(artifact.Artifact):
    """Per-task lottery-ticket masks (`masks/<task>.npz`), θ0 (`theta0/`), the search report."""

    # Kubeflow v2 recovers custom artifact classes from the type name, read as "<module>.<Class>"
    # (one dot): `components.TaskMasks` is importable because components/__init__.py exports it.
    TYPE_NAME = "components.TaskMasks"
