"""TicketSearch: find one lottery-ticket mask per task by iterative magnitude pruning.

Inputs: transformed examples, the transform graph and the schema; ExampleGen's examples (their
`span` dates the masks). Outputs: `masks` (TaskMasks: `masks/<task>.npz` with `masks/ticket.json`,
θ0 under `theta0/`, `ticket_report.json`, `pruning_curves.png`) and `model_run` (TensorBoard logs
per task and round). With `reuse_from` (`ticket.reuse`), a pushed model's masks may be reused
instead of searched (`modules/ticket_reuse.py`).
"""
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec, standard_artifacts

from components.artifacts import TRAINER_PARAMETERS, TRANSFORMED_INPUTS, TaskMasks
from components.ticket_search import executor


class TicketSearchSpec(types.ComponentSpec):
    """Parameters, inputs and outputs of TicketSearch."""

    PARAMETERS = {
        **TRAINER_PARAMETERS,
        # A pushed model, or a serving directory whose newest version is read when the search
        # runs, whose published masks may be reused; absent: search.
        "reuse_from": component_spec.ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        **TRANSFORMED_INPUTS,
        # ExampleGen's output: its `span` property is the span the masks are searched on.
        "raw_examples": component_spec.ChannelParameter(type=standard_artifacts.Examples,
                                                        optional=True),
    }
    OUTPUTS = {
        "masks": component_spec.ChannelParameter(type=TaskMasks),
        "model_run": component_spec.ChannelParameter(type=standard_artifacts.ModelRun),
    }


class TicketSearch(base_component.BaseComponent):
    """Per-task lottery-ticket search from one shared, seeded initialisation θ0."""

    SPEC_CLASS = TicketSearchSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples, transform_graph, schema, config_json, code_fingerprint=None,
                 raw_examples=None, reuse_from=None):
        """`config_json` is `Config.to_json(...)`; its `model`, `ticket`, `vocab` sections apply.
        `raw_examples`: ExampleGen's examples (their span); `reuse_from`: a pushed model, or a
        serving directory, whose masks `ticket.reuse` may take instead of searching."""
        super().__init__(spec=TicketSearchSpec(
            examples=examples, transform_graph=transform_graph, schema=schema,
            raw_examples=raw_examples, reuse_from=reuse_from,
            config=config_json, code_fingerprint=code_fingerprint,
            masks=types.Channel(type=TaskMasks), model_run=types.Channel(type=standard_artifacts.ModelRun)))
