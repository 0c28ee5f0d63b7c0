"""StrictExampleValidator: ExampleValidator whose run stops when the data has anomalies.

TFX's ExampleValidator records anomalies but lets the pipeline go on. This component has the same
inputs, outputs and anomalies artifact, and fails (stopping every downstream node) with a message
naming each anomalous feature. Make downstream nodes depend on it (`add_upstream_node`).
"""
from tfx.components import ExampleValidator
from tfx.dsl.components.base import executor_spec

from components.strict_example_validator import executor


class StrictExampleValidator(ExampleValidator):
    """ExampleValidator that raises `DataAnomaliesError` on any anomaly."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
