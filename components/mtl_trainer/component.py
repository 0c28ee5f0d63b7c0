"""MTLTrainer: train one shared network (LT4REC: through the per-task tickets) and export it.

Inputs: transformed examples, transform graph, schema and TicketSearch's `masks` (LT4REC only). Outputs: the
standard `Model` artifact (`Format-Serving/` SavedModel with `serving_default` and
`transform_features` signatures) and `model_run` (TensorBoard logs, `training_report.json`).
"""
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec, standard_artifacts

from components.artifacts import TRAINER_PARAMETERS, TRANSFORMED_INPUTS, TaskMasks
from components.mtl_trainer import executor


class MTLTrainerSpec(types.ComponentSpec):
    """Parameters, inputs and outputs of MTLTrainer."""

    PARAMETERS = {
        **TRAINER_PARAMETERS,
        # A pushed model, or a serving directory whose newest version is read when the trainer
        # runs (`warm_start.newest`); absent: no warm start.
        "warm_start_from": component_spec.ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        **TRANSFORMED_INPUTS,
        # TicketSearch's output; absent for architectures without tickets (`mtl.architecture`).
        "masks": component_spec.ChannelParameter(type=TaskMasks, optional=True),
    }
    OUTPUTS = {
        "model": component_spec.ChannelParameter(type=standard_artifacts.Model),
        "model_run": component_spec.ChannelParameter(type=standard_artifacts.ModelRun),
    }


class MTLTrainer(base_component.BaseComponent):
    """Masked multi-task training from θ0 with per-task optimizers; exports a serving model."""

    SPEC_CLASS = MTLTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples, transform_graph, schema, config_json, masks=None,
                 code_fingerprint=None, warm_start_from=None):
        """`config_json` is `Config.to_json(...)`; its `model`, `mtl` and `vocab` sections apply.
        `masks`: TicketSearch's tickets (`lt4rec`); None for the other architectures, which
        start from the config's seeded initialisation. `warm_start_from`: a pushed model, or a
        serving directory (its newest version when the trainer runs), to start from."""
        super().__init__(spec=MTLTrainerSpec(
            examples=examples, transform_graph=transform_graph, schema=schema, masks=masks,
            config=config_json, code_fingerprint=code_fingerprint,
            warm_start_from=warm_start_from, model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun)))
