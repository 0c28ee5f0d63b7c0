"""Evaluator: TFX's Evaluator (same spec, inputs, outputs and node id) that evaluates a first
run's candidate once instead of twice (see `executor`)."""
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.evaluator.executor import Executor


class Evaluator(tfx.components.Evaluator):
    """TFX's Evaluator whose executor skips a baseline that is the candidate itself."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
