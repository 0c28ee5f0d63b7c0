"""TicketSearch: find one lottery-ticket mask per task by iterative magnitude pruning.

Inputs: transformed examples, the transform graph and the schema. Outputs: `masks` (TaskMasks:
`masks/<task>.npz`, θ0 under `theta0/`, `ticket_report.json`, `pruning_curves.png`) and
`model_run` (TensorBoard logs per task and round).
"""
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec, standard_artifacts

from components.artifacts import TRAINER_PARAMETERS, TRANSFORMED_INPUTS, TaskMasks
from components.ticket_search import executor


class TicketSearchSpec(types.ComponentSpec):
    """Parameters, inputs and outputs of TicketSearch."""

    PARAMETERS = TRAINER_PARAMETERS
    INPUTS = TRANSFORMED_INPUTS
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
