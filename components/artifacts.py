"""Custom artifact types shared by the custom components."""
from tfx.types import artifact


class TaskMasks(artifact.Artifact):
    """One lottery-ticket mask per task (`masks/<task>.npz`), θ0 (`theta0/`) and the search report."""

    TYPE_NAME = "TaskMasks"
