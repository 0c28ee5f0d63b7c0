"""Evaluator: TFX's Evaluator (same inputs, outputs and node id) that evaluates a first run's
candidate once instead of twice, and gates by the run's gate values (see `executor`)."""
from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import component_spec, standard_artifacts, standard_component_specs
from tfx.utils import json_utils

from components.evaluator.executor import CONFIG_KEY, GATES_KEY, Executor
from modules.evaluation import GATE_PARAMETERS


class EvaluatorSpec(standard_component_specs.EvaluatorSpec):
    """TFX's EvaluatorSpec plus the config the EvalConfig is built from (its `spec` and
    `evaluation` sections) and the run's gate values, which override its `evaluation` ones."""

    PARAMETERS = {
        **standard_component_specs.EvaluatorSpec.PARAMETERS,
        CONFIG_KEY: component_spec.ExecutionParameter(type=str, optional=True),
        "auc_lower_bound": component_spec.ExecutionParameter(type=float, optional=True),
        "max_auc_regression": component_spec.ExecutionParameter(type=float, optional=True),
        GATES_KEY: component_spec.ExecutionParameter(type=str, optional=True),
    }


class Evaluator(base_beam_component.BaseBeamComponent):
    """TFX's Evaluator whose executor skips a baseline that is the candidate itself and builds
    the EvalConfig from `config_json` and the gate values when given."""

    SPEC_CLASS = EvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, examples, model, eval_config, baseline_model=None, schema=None,
                 example_splits=None, config_json=None, gates=None):
        """As TFX's Evaluator (its other arguments unset), plus `config_json` (the `spec` and
        `evaluation` sections) and `gates` ({name in GATE_PARAMETERS: value or a
        RuntimeParameter}) overriding its `evaluation` settings when the Evaluator runs."""
        gates = gates or {}
        unknown = set(gates) - set(GATE_PARAMETERS)
        if unknown:
            raise ValueError(f"unknown gate values {sorted(unknown)}; known: {GATE_PARAMETERS}")
        super().__init__(spec=EvaluatorSpec(
            examples=examples, model=model, baseline_model=baseline_model, schema=schema,
            eval_config=eval_config, example_splits=json_utils.dumps(example_splits),
            fairness_indicator_thresholds=json_utils.dumps(None), config_json=config_json,
            auc_lower_bound=gates.get("auc_lower_bound"),
            max_auc_regression=gates.get("max_auc_regression"),
            gates_json=gates.get("gates"),
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing)))
