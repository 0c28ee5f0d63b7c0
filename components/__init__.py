"""Custom TFX components of lt4rec-tfx."""
from components.artifacts import TaskMasks  # noqa: F401  (Kubeflow v2 imports it by type name)
