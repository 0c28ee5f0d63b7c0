"""BaselineModel: the model the Evaluator compares the candidate with, read from the serving dir.

The pusher only publishes blessed models under `serving_dir/<version>/`, so the newest version
there is the latest blessed (and served) model. This replaces TFX's `LatestBlessedModelStrategy`
resolver, which the open-source Kubeflow Pipelines backend cannot run (it implements container
and importer executors only), and gives local and Kubeflow runs the same baseline. Before the
first push there is no baseline: the candidate itself is handed on, marked
`baseline_is_candidate`, and the Evaluator (`components/evaluator`) drops it, evaluating the
candidate once under the absolute lower bounds only. The same holds when the newest pushed model
lacks an output or label the candidate has (a task added to the spec), recorded in the
`baseline_skipped` property. Never served from a cache: its real input (the serving directory)
is outside the artifact graph.
"""
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec, standard_artifacts

from components.baseline_model import executor


class BaselineModelSpec(types.ComponentSpec):
    """Parameters, inputs and outputs of BaselineModel."""

    PARAMETERS = {"serving_dir": component_spec.ExecutionParameter(type=str)}
    INPUTS = {"model": component_spec.ChannelParameter(type=standard_artifacts.Model)}
    OUTPUTS = {"baseline_model": component_spec.ChannelParameter(type=standard_artifacts.Model)}


class BaselineModel(base_component.BaseComponent):
    """Copies the newest pushed model (else the candidate `model`) to a `baseline_model`."""

    SPEC_CLASS = BaselineModelSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model, serving_dir):
        super().__init__(spec=BaselineModelSpec(
            model=model, serving_dir=serving_dir,
            baseline_model=types.Channel(type=standard_artifacts.Model)))
