"""StrictExampleValidator: ExampleValidator whose blocking anomalies stop the run.

TFX's ExampleValidator records anomalies but lets the pipeline go on. This component has the same
inputs, outputs and anomalies artifact; it sorts each anomaly into a class (`checks.anomalies`:
a new column, a missing column, a wrong type, a value out of its domain, missing values, other)
and fails (stopping every downstream node) on the classes configured to block, naming each
feature; the others are logged as warnings and recorded on the anomalies artifact (`warnings`).
Drift against the previous span and skew against logged serving requests are classes too.
Make downstream nodes depend on it (`add_upstream_node`).
"""
from tfx import types
from tfx.components import ExampleValidator
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec, standard_artifacts, standard_component_specs
from tfx.utils import json_utils

from components.strict_example_validator import executor


class StrictExampleValidatorSpec(standard_component_specs.ExampleValidatorSpec):
    """ExampleValidator's spec plus the `checks` config section (JSON)."""

    INPUTS = {**standard_component_specs.ExampleValidatorSpec.INPUTS,
              executor.EXAMPLES_KEY: component_spec.ChannelParameter(
                  type=standard_artifacts.Examples, optional=True)}
    PARAMETERS = {**standard_component_specs.ExampleValidatorSpec.PARAMETERS,
                  executor.CHECKS_KEY: component_spec.ExecutionParameter(type=str),
                  executor.HISTORY_KEY: component_spec.ExecutionParameter(type=str,
                                                                          optional=True)}


class StrictExampleValidator(ExampleValidator):
    """ExampleValidator that raises `DataAnomaliesError` on the anomalies configured to block."""

    SPEC_CLASS = StrictExampleValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, statistics, schema, checks_json, statistics_history=None, examples=None):
        """`checks_json`: the config's `checks` section (`Config.to_json(["checks"])`);
        `statistics_history`: where each passed span's train statistics are kept, for the next
        span's drift check (None: no drift check); `examples`: ExampleGen's (their span: TFX's
        StatisticsGen does not copy it)."""
        base_component.BaseComponent.__init__(self, spec=StrictExampleValidatorSpec(
            statistics=statistics, schema=schema, exclude_splits=json_utils.dumps([]),
            checks=checks_json, statistics_history=statistics_history, examples=examples,
            anomalies=types.Channel(type=standard_artifacts.ExampleAnomalies)))
