"""InfraValidator: TFX's InfraValidator (same spec, inputs, outputs and node id) whose model server
pod stages the candidate itself, so it runs on Kubeflow Pipelines 2.x (see `executor`).

A component of its own rather than a subclass: TFX 1.16's KubeflowV2DagRunner refuses TFX's
InfraValidator class by type (step_builder.py, "The component type ... is not supported").
"""
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs

from components.infra_validator.executor import Executor


class InfraValidator(base_component.BaseComponent):
    """Loads the candidate in TF Serving on Kubernetes and queries it: its InfraBlessing gates
    the push."""

    SPEC_CLASS = standard_component_specs.InfraValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model, serving_spec, examples=None, request_spec=None,
                 validation_spec=None):
        """As TFX's InfraValidator; `serving_spec` must run TF Serving on Kubernetes."""
        if serving_spec.WhichOneof("serving_platform") != "kubernetes" or \
                serving_spec.WhichOneof("serving_binary") != "tensorflow_serving":
            raise ValueError("InfraValidator runs TF Serving on Kubernetes only: its serving "
                             f"spec has {serving_spec.WhichOneof('serving_binary')} on "
                             f"{serving_spec.WhichOneof('serving_platform')}")
        super().__init__(spec=standard_component_specs.InfraValidatorSpec(
            model=model, examples=examples, serving_spec=serving_spec,
            validation_spec=validation_spec, request_spec=request_spec,
            blessing=types.Channel(type=standard_artifacts.InfraBlessing)))
