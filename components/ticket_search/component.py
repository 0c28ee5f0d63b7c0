"""TicketSearch: find one lottery-ticket mask per task by iterative magnitude pruning.

Inputs: transformed examples, the transform graph and the schema. Outputs: `masks` (TaskMasks:
`masks/<task>.npz`, θ0 under `theta0/`, `ticket_report.json`, `pruning_curves.png`) and
`model_run` (TensorBoard logs per task and round).
"""
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec, standard_artifacts

from components.artifacts import TaskMasks
from components.ticket_search import executor


class TicketSearchSpec(types.ComponentSpec):
    """Parameters, inputs and outputs of TicketSearch."""

    PARAMETERS = {
        "config": component_spec.ExecutionParameter(type=str),
        # Changes whenever our code changes, so TFX's cache never reuses stale results.
        "code_fingerprint": component_spec.ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        "examples": component_spec.ChannelParameter(type=standard_artifacts.Examples),
        "transform_graph": component_spec.ChannelParameter(
            type=standard_artifacts.TransformGraph),
        "schema": component_spec.ChannelParameter(type=standard_artifacts.Schema),
    }
    OUTPUTS = {
        "masks": component_spec.ChannelParameter(type=TaskMasks),
        "model_run": component_spec.ChannelParameter(type=standard_artifacts.ModelRun),
    }


class TicketSearch(base_component.BaseComponent):
    """Per-task lottery-ticket search from one shared, seeded initialisation θ0."""

    SPEC_CLASS = TicketSearchSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples, transform_graph, schema, config_json, code_fingerprint=None):
        """`config_json` is `Config.to_json(...)`; its `model`, `ticket`, `vocab` sections apply."""
        super().__init__(spec=TicketSearchSpec(
            examples=examples, transform_graph=transform_graph, schema=schema,
            config=config_json, code_fingerprint=code_fingerprint,
            masks=types.Channel(type=TaskMasks), model_run=types.Channel(type=standard_artifacts.ModelRun)))
