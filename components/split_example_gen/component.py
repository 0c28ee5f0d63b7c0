"""SplitExampleGen: ImportExampleGen that writes the three splits train, validation and eval.

Hash mode reads every file under the input base and hash-splits it into the three splits by the
output config's buckets; given mode reads `train/` and `eval/` as given, and `validation/` too,
or carves a share of the train files' records out as validation by hash. In the spans layout
(`spans.py`) the driver resolves the span (the newest, or the range config's, or on Kubeflow a
`requested_span`: `spans.with_requested_span`) and the executor reads the window of spans up to
it.
The hash reads the whole
serialized record or one feature (`split_key`), as TFX's own SplitConfig does; unlike TFX's, it
also works on the serialized records ImportExampleGen reads.
"""
from tfx import types
from tfx.components.example_gen import component as example_gen_component
from tfx.components.example_gen import utils
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import component_spec, standard_artifacts, standard_component_specs

from components.split_example_gen import executor, spans


class SplitExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    """FileBasedExampleGen's spec plus the split options (`executor.split_options`) and the
    span a run asks for (`spans.REQUESTED_SPAN_KEY`; 0: the newest)."""

    PARAMETERS = {**standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
                  executor.SPLIT_OPTIONS_KEY: component_spec.ExecutionParameter(type=str),
                  spans.REQUESTED_SPAN_KEY: component_spec.ExecutionParameter(type=int,
                                                                              optional=True)}


class SplitExampleGen(example_gen_component.FileBasedExampleGen):
    """ImportExampleGen (gzip TFRecords of tf.Example) with a validation split."""

    SPEC_CLASS = SplitExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, input_base, input_config, output_config=None, split_options=None,
                 range_config=None, requested_span=None):
        """`split_options` is `executor.split_options(...)`; `requested_span` (an int or a
        RuntimeParameter) a span for the Kubeflow entrypoint to resolve (`range_config` there is
        left unset); the rest as for ImportExampleGen."""
        # FileBasedExampleGen.__init__ builds its own spec class; build ours the same way.
        base_beam_component.BaseBeamComponent.__init__(self, spec=SplitExampleGenSpec(
            input_base=input_base, input_config=input_config,
            output_config=output_config or utils.make_default_output_config(input_config),
            split_options=split_options or executor.split_options(""),
            range_config=range_config, requested_span=requested_span,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            examples=types.Channel(type=standard_artifacts.Examples)))
