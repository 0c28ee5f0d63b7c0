"""The lt4rec TFX pipeline definition (TFX-template style): one `create_pipeline` for every runner."""
import os

import tensorflow as tf
from tfx import v1 as tfx
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.proto import example_gen_pb2
from tfx.utils import io_utils

from components.atomic_pusher.component import AtomicPusher
from components.baseline_model.component import BaselineModel
from components.evaluator.component import Evaluator
from components.infra_validator.component import InfraValidator
from components.mtl_trainer.component import MTLTrainer
from components.split_example_gen.component import SplitExampleGen
from components.split_example_gen import spans
from components.split_example_gen.executor import split_options
from components.strict_example_validator.component import StrictExampleValidator
from components.ticket_search.component import TicketSearch
from modules import tasks
from modules.config import SPLITS, Config, ConfigError
from modules.serving_dir import newest_version
from pipeline.fingerprint import (EXAMPLE_GEN_CODE, TICKET_CODE, TRAINER_CODE, TRANSFORM_CODE,
                                  code_fingerprint)
from pipeline import summary
from modules.evaluation import eval_config, gate_values

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "schema", "schema.pbtxt")
PREPROCESSING_FN = "modules.preprocessing.preprocessing_fn"
# Config sections each step reads (and whose changes invalidate its cache).
TRANSFORM_SECTIONS = ("spec", "data", "vocab")
TICKET_SECTIONS = ("spec", "data", "vocab", "input", "model", "ticket")
TRAINER_SECTIONS = TICKET_SECTIONS + ("mtl",)
EVALUATOR_SECTIONS = ("spec", "evaluation")
# Nodes whose real input lies outside the artifact graph (the serving directory): every runner
# runs them afresh instead of serving them from its cache.
NEVER_CACHED = ("BaselineModel",)
# The run parameters of the Kubeflow pipeline (`create_pipeline(run_parameters=True)`): what each
# sets. Their defaults are the compiled values.
RUN_PARAMETERS = {
    "data_root": "where ExampleGen reads the data (in the layout of the compiled data root)",
    "span": "the span to read in the spans layout (span-<N> directories); 0: the newest",
    "auc_lower_bound": "evaluation.auc_lower_bound: every task's AUC lower bound",
    "max_auc_regression": "evaluation.max_auc_regression: every task's allowed AUC drop "
                          "against the pushed model",
    "gates": "evaluation.gates as JSON, per task or product (replaces the compiled mapping), "
             'e.g. {"<task>": {"auc_lower_bound": 0.6}}',
}


def reads_spans(data_root, config):
    """Whether the data is read in the spans layout (`data.layout`; `auto` probes local roots
    for span-<N> directories)."""
    return config.data.layout == "spans" or (
        config.data.layout == "auto" and "://" not in data_root
        and bool(spans.span_directories(data_root)))


def split_configs(data_root, config, span=None, schema_path=None):
    """(input_config, output_config, split_options, range_config) of SplitExampleGen: train,
    validation, eval.

    Given mode: `data_root/train/` and `data_root/eval/` as given (logs split by day), plus
    `data_root/validation/` (`data.validation_from: directory`) or a `data.validation_share` of
    the train records carved out by hash (`train`). Hash mode: every file directly under
    `data_root` is hash-split by `data.split_buckets`. `split_mode: auto` probes local paths
    only (compiling for a cluster needs no object-store access); `validation_from: auto` probes
    local paths here and other roots when ExampleGen runs. Spans layout (`data.layout`): the
    same under `data_root/span-{SPAN}/`, the newest span (TFX's driver resolves it when
    ExampleGen runs) or `span`, and the `data.window_spans` before it. With `schema_path`,
    ExampleGen drops and counts the records failing its row checks (`checks`).
    """
    data = config.data
    fingerprint = code_fingerprint(EXAMPLE_GEN_CODE)
    local = "://" not in data_root
    base, prefix, range_config = data_root, "", None
    if reads_spans(data_root, config):
        prefix = spans.SPAN_DIR + "/"
        if local:
            try:
                probed = spans.window(data_root, spans.newest(data_root) if span is None
                                      else span, 1)[-1]
            except ValueError as error:
                raise ConfigError(f"{error} (data.layout: spans)") from None
            base = os.path.join(data_root, f"span-{probed}")
        if span is not None:
            range_config = spans.range_config(span)
    elif span is not None:
        raise ConfigError(f"invalid configuration: a span ({span}) was asked for, but "
                          f"{data_root!r} is not in the spans layout (span-<N> directories; "
                          f"data.layout: {data.layout})")
    window = data.window_spans if prefix else None
    checks = {"schema": schema_path, "max_dropped_fraction": config.checks.max_dropped_fraction} \
        if schema_path else None
    mode = data.split_mode
    if mode == "auto":
        mode = "given" if local and all(
            tf.io.gfile.isdir(os.path.join(base, s)) for s in ("train", "eval")) else "hash"
    sizing = {"min_class_rows": data.validation_min_class_rows,
              "max_share": data.validation_max_share,
              "rules": tasks.class_rules(config.spec)} if data.validation_min_class_rows else None
    if mode == "hash":
        return example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name="single", pattern=prefix + "*")]), \
            example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
                example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=data.split_buckets[name])
                for name in SPLITS])), split_options(data.split_key, None, fingerprint,
                                                     sizing=sizing, window_spans=window,
                                                     row_checks=checks), \
            range_config
    source = data.validation_from
    if source == "auto" and local:
        source = "directory" if tf.io.gfile.isdir(os.path.join(base, "validation")) \
            else "train"
    given = SPLITS if source == "directory" else ("train", "eval")
    return example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name=name, pattern=f"{prefix}{name}/*")
        for name in given]), None, \
        split_options(data.split_key, None if source == "directory" else data.validation_share,
                      fingerprint, probe_validation=source == "auto",
                      sizing=None if source == "directory" else sizing, window_spans=window,
                      row_checks=checks), \
        range_config


def check_schema(config, schema_path):
    """Raise ConfigError naming the spec field and the schema file if a column the spec reads is
    missing from the schema or typed against its kind, or a feature `checks.drift` or
    `checks.skew` compares is missing from it. A schema not readable here (a path inside
    the Kubeflow image) is checked when Transform reads it."""
    if "://" in schema_path or not os.path.isfile(schema_path):
        return
    schema = io_utils.parse_pbtxt_file(schema_path, schema_pb2.Schema())
    problems = config.spec.schema_problems(
        {f.name: schema_pb2.FeatureType.Name(f.type) for f in schema.feature})
    if problems:
        raise ConfigError(f"invalid configuration: the spec does not match the schema "
                          f"{schema_path}: " + "; ".join(problems))
    names = {f.name for f in schema.feature}
    unknown = [f"checks.{kind}.{name}" for kind in ("drift", "skew")
               for name in sorted(getattr(config.checks, kind)) if name not in names]
    if unknown:
        raise ConfigError(f"invalid configuration: {', '.join(unknown)}: no such feature in the "
                          f"schema {schema_path}")


def pushed_source(serving_dir):
    """What MTLTrainer warm-starts from (`mtl.warm_start: latest`) and TicketSearch may reuse
    masks from (`ticket.reuse`): the newest pushed version when the serving directory is local
    (resolved now, so a new push changes the step's cache key), else the serving directory,
    whose newest version the step reads when it runs."""
    if "://" in serving_dir:
        return serving_dir
    return newest_version(serving_dir) or serving_dir


def _run_parameter(name, value, declared):
    """`value`, or with `declared` the run parameter `name` (a RUN_PARAMETERS key) it defaults
    to."""
    return tfx.dsl.experimental.RuntimeParameter(name=name, ptype=type(value), default=value) \
        if declared else value


def create_components(data_root, serving_dir, config, schema_path=SCHEMA_PATH, span=None,
                      statistics_dir=None, run_parameters=False, infra_validation=None):
    """All pipeline nodes, in dependency order (`span`: see `split_configs`; the daily settings
    left at "auto" are decided by the layout: `Config.for_layout`). The validator keeps each
    passed span's train statistics under `statistics_dir` for the next span's drift check.
    With `run_parameters`, the data root, the span (spans layout only) and the gates are run
    parameters (`RUN_PARAMETERS`) defaulting to these values; what `data_root` is probed for
    at compile time (its layout and splits) then holds for every run. `infra_validation` (the
    InfraValidator's serving, validation and request specs) adds the model server check to the
    push gate."""
    input_config, output_config, options, range_config = split_configs(
        data_root, config, span, schema_path)
    spans_layout = reads_spans(data_root, config)
    config = config.for_layout(spans_layout)
    requested_span = None
    if run_parameters and spans_layout:
        requested_span, range_config = _run_parameter("span", span or 0, True), None
    # Kept under ImportExampleGen's node id: it is one, with our splitting.
    example_gen = SplitExampleGen(
        input_base=_run_parameter("data_root", data_root, run_parameters),
        input_config=input_config, output_config=output_config, split_options=options,
        range_config=range_config, requested_span=requested_span).with_id("ImportExampleGen")
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_path)
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"])
    example_validator = StrictExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"],
        checks_json=config.to_json(["checks"]), statistics_history=statistics_dir,
        examples=example_gen.outputs["examples"])
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config={"config": config.to_json(TRANSFORM_SECTIONS),
                       "code_fingerprint": code_fingerprint(TRANSFORM_CODE)})
    transform.add_upstream_node(example_validator)   # anomalies stop the run before Transform
    # TicketSearch runs for the architecture that trains through tickets (LT4REC) only.
    ticket_search = TicketSearch(
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"], config_json=config.to_json(TICKET_SECTIONS),
        code_fingerprint=code_fingerprint(TICKET_CODE), raw_examples=example_gen.outputs["examples"],
        reuse_from=pushed_source(serving_dir) if config.ticket.reuse != "never" else None) \
        if config.searches_tickets() else None
    trainer = MTLTrainer(
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        masks=ticket_search.outputs["masks"] if ticket_search else None,
        config_json=config.to_json(TRAINER_SECTIONS),
        code_fingerprint=code_fingerprint(TRAINER_CODE),
        warm_start_from=pushed_source(serving_dir) if config.mtl.warm_start == "latest" else None)
    baseline = BaselineModel(model=trainer.outputs["model"], serving_dir=serving_dir)
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=baseline.outputs["baseline_model"], schema=schema_gen.outputs["schema"],
        eval_config=eval_config(config), example_splits=["eval"],
        config_json=config.to_json(EVALUATOR_SECTIONS),
        gates={name: _run_parameter(name, value, run_parameters)
               for name, value in gate_values(config).items()})
    infra_validator = InfraValidator(
        model=trainer.outputs["model"], examples=example_gen.outputs["examples"],
        **infra_validation) if infra_validation else None
    pusher = AtomicPusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        infra_blessing=infra_validator.outputs["blessing"] if infra_validator else None,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)))
    return [c for c in (example_gen, schema_gen, statistics_gen, example_validator, transform,
                        ticket_search, trainer, baseline, evaluator, infra_validator, pusher)
            if c is not None]


def create_pipeline(pipeline_root, data_root, serving_dir, config=None,
                    metadata_connection_config=None, enable_cache=True, beam_pipeline_args=None,
                    schema_path=SCHEMA_PATH, span=None, statistics_dir=None, run_parameters=False,
                    infra_validation=None):
    """Build the lt4rec pipeline; the runner (local or Kubeflow) decides where it runs. It reads
    the newest span of a spans layout, or `span`. `statistics_dir` keeps each passed span's
    statistics for the next span's drift check (`checks.drift`; None: no drift check).
    `run_parameters`, `infra_validation`: see `create_components` (the Kubeflow pipeline's).

    Raises ConfigError (naming the field) before anything is built if `config` is invalid.
    """
    config = config or Config()
    config.validate()
    check_schema(config, schema_path)
    summary.check_outputs(config.spec)
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=pipeline_root,
        components=create_components(data_root, serving_dir, config, schema_path, span,
                                     statistics_dir, run_parameters, infra_validation),
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args if beam_pipeline_args is not None
        else config.beam_pipeline_args,
    )
