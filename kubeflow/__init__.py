"""kubeflow package."""
