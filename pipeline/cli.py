"""The `lt4rec` command: run the pipeline, score with a pushed model, generate synthetic data,
and bring your own data (convert it, infer its schema)."""
import argparse
import contextlib
import json
import logging
import os
import re
import sys
import time

from modules.config import Config, ConfigError


def _parser():
    parser = argparse.ArgumentParser(prog="lt4rec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the pipeline locally (LocalDagRunner)")
    run.add_argument("--data", help="directory of gzip TFRecords (with train/ and eval/ "
                     "subdirectories, or hash-split); default: generate synthetic data")
    run.add_argument("--root", default="runs/default", help="all artifacts go under this directory")
    run.add_argument("--spec", help=SPEC_HELP)
    run.add_argument("--config", help="JSON or YAML file overriding the defaults")
    run.add_argument("--schema", help="schema.pbtxt of the data (default: the LT4REC schema, "
                                      "schema/schema.pbtxt)")
    run.add_argument("--span", type=int, help="the span to run on when --data holds span-<N> "
                     "directories (default: the newest)")
    run.add_argument("--no-cache", action="store_true", help="re-execute every component")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="every library's logging on the console (default: one line per step "
                          "here, the rest in <root>/logs/)")
    run.add_argument("--search-tickets", action="store_true",
                     help="search the tickets even if ticket.reuse would take a pushed model's "
                          "masks (ticket.reuse: never for this run)")

    predict = sub.add_parser("predict", help="score TFRecords with a pushed model (JSON lines)")
    predict.add_argument("--model", required=True,
                         help="serving directory (latest version is used) or a version directory")
    predict.add_argument("--data", required=True, help="TFRecord file or glob (.gz = gzip)")
    predict.add_argument("--out", help="output file (default: stdout)")

    kf = sub.add_parser("kubeflow", help="compile for / submit or schedule on Kubeflow Pipelines "
                        "2.x, or run "
                        "a compiled spec here as the open-source backend would (emulate)")
    kf.add_argument("action", choices=["compile", "submit", "schedule", "emulate"])
    kf.add_argument("--spec", help=SPEC_HELP)
    kf.add_argument("--schema", help="compile: a local copy of the data's schema.pbtxt to check "
                                     "the spec against (the image holds it at "
                                     "kubeflow.schema_path)")
    kf.add_argument("--config", help="JSON or YAML file overriding the defaults")
    kf.add_argument("--pipeline", default="lt4rec_pipeline.json",
                    help="compiled pipeline spec to write (compile), upload (submit) or run "
                         "(emulate)")
    for flag, help_text in (("image", "container image for every component"),
                            ("pipeline-root", "object store URI for artifacts"),
                            ("data-root", "input TFRecords URI"),
                            ("serving-dir", "push destination URI"),
                            ("statistics-dir", "URI keeping each span's statistics (drift checks)"),
                            ("endpoint", "Kubeflow Pipelines API host"),
                            ("namespace", "Kubernetes namespace")):
        kf.add_argument(f"--{flag}", help=help_text)
    kf.add_argument("--gpus", type=int, help="GPUs per trainer step (0: none)")
    kf.add_argument("--no-cache", action="store_true",
                    help="submit/schedule/emulate: run every step (default: the compiled "
                         "per-step caching)")
    kf.add_argument("--param", action="append", metavar="NAME=VALUE",
                    help="submit/schedule/emulate: set a run parameter of the compiled spec "
                         "(data_root, span, auc_lower_bound, max_auc_regression, gates; "
                         "repeatable; the others keep their compiled values)")
    kf.add_argument("--cron", help="schedule: when to run, a cron expression (e.g. "
                    "'0 3 * * *': 03:00 daily; a sixth leading field gives seconds)")
    kf.add_argument("--interval-seconds", type=int,
                    help="schedule: run every this many seconds (instead of --cron)")
    kf.add_argument("--token-file", help="submit/schedule: a file holding the bearer token of your "
                    "identity (default in a pod: its KFP ServiceAccount token)")
    kf.add_argument("--cookies-file", help="submit/schedule: a file holding the Cookie header of a "
                    "logged-in browser session (Dex / oauth2-proxy fronts)")
    kf.add_argument("--state", default="runs/kfp-emulator",
                    help="emulate: the emulated backend's metadata and cache directory (the "
                         "kubeflow.s3_secret it gives the pods: this shell's AWS_* keys)")

    convert = sub.add_parser("convert", help="CSV or Parquet to gzip TFRecords typed by a spec")
    convert.add_argument("--input", required=True, help="a .csv or .parquet file, or a glob")
    convert.add_argument("--spec", required=True, help=SPEC_HELP)
    convert.add_argument("--out", required=True, help="directory for the TFRecord shards")
    convert.add_argument("--list-separator", default="|",
                         help="separator of the ids in an id_list cell (default: |)")
    convert.add_argument("--rows-per-file", type=int, default=1000000)
    convert.add_argument("--unlabeled", action="store_true",
                         help="impressions to score (`lt4rec predict`): no task or score columns")

    schema = sub.add_parser("schema", help="infer a starting schema.pbtxt for a spec's data")
    schema.add_argument("--data", required=True, help="directory (or glob) of gzip TFRecords")
    schema.add_argument("--spec", required=True, help=SPEC_HELP)
    schema.add_argument("--out", required=True, help="schema.pbtxt to write (not overwritten)")

    sub.add_parser("report", add_help=False,
                   help="render an HTML report of a run (see `lt4rec report -h`)")

    synth = sub.add_parser("synth", help="write deterministic synthetic TFRecords (the LT4REC "
                                         "story, or data for any --spec)")
    synth.add_argument("--out", required=True)
    synth.add_argument("--spec", help=SPEC_HELP + " (then --splits, --profile and --spans do "
                       "not apply)")
    synth.add_argument("--rows", type=int, default=Config().data.synthetic_rows)
    synth.add_argument("--seed", type=int, default=Config().data.synthetic_seed)
    synth.add_argument("--splits", action="store_true", help="write train/ and eval/ subdirectories")
    synth.add_argument("--spans", type=int, help="write N days as span-1 ... span-N, --rows "
                       "each: new ids every day, drifting tastes (the spans layout of `run`)")
    synth.add_argument("--profile", choices=("default", "small_logs", "conflict"),
                       default="default",
                       help="pool sizes and logging (see pipeline.synthetic_data): small_logs is "
                       "like a ~4k-row production sample, most ids seen once or twice; conflict "
                       "is small_logs with partly conflicting tasks")
    return parser


SPEC_HELP = ("YAML or JSON file describing your data: its `spec` (features, tasks, ...) and the "
             "settings naming its columns (`data.split_key`, `evaluation.slice_features`); "
             "default: the LT4REC data")


def main(argv=None):
    """Entry point of the `lt4rec` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["report"]:
        from pipeline import report
        return report.main(argv[1:])
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.command == "synth":
            return _synth(args)
        if args.command == "predict":
            return _predict(args)
        if args.command == "kubeflow":
            return _kubeflow(args)
        if args.command == "convert":
            return _convert(args)
        if args.command == "schema":
            return _schema(args)
        return _run(args)
    except ConfigError as error:
        print(f"lt4rec: {error}", file=sys.stderr)
        return 2


def _synth(args):
    if args.spec:
        from pipeline import synthetic_spec
        if args.splits or args.profile != "default" or args.spans:
            raise ConfigError("invalid configuration: --splits, --profile and --spans shape the "
                              "LT4REC story; with --spec the data is hash-split by the pipeline")
        paths = synthetic_spec.write(Config.load(spec_path=args.spec).spec, args.out, args.rows,
                                     args.seed)
        print(f"wrote {args.rows} examples for {args.spec} to {len(paths)} file(s) under "
              f"{args.out}")
        return 0
    from pipeline import synthetic_data
    if args.spans:
        paths = synthetic_data.write_spans(args.out, args.spans, rows=args.rows, seed=args.seed,
                                           splits=args.splits, profile=args.profile)
        print(f"wrote {args.spans} spans of {args.rows} examples to {len(paths)} file(s) under "
              f"{args.out}")
        return 0
    paths = synthetic_data.write_dataset(args.out, rows=args.rows, seed=args.seed,
                                         splits=args.splits, profile=args.profile)
    print(f"wrote {args.rows} examples to {len(paths)} file(s) under {args.out}")
    return 0


def _convert(args):
    from pipeline import convert
    spec = Config.load(spec_path=args.spec).spec
    result = convert.convert(args.input, spec, args.out, args.list_separator, args.rows_per_file,
                             labeled=not args.unlabeled)
    print(f"converted {result['rows']} rows into {len(result['files'])} file(s) under {args.out}")
    return 0


def _schema(args):
    from pipeline import infer_schema
    spec = Config.load(spec_path=args.spec).spec
    pattern = os.path.join(args.data, "*") if os.path.isdir(args.data) else args.data
    schema, examples = infer_schema.infer(pattern, spec)
    infer_schema.write(schema, args.out, args.data, examples)
    print(f"wrote {args.out} from {examples} examples: review it, then "
          f"`lt4rec run --spec {args.spec} --schema {args.out} --data ...`")
    return 0


def _predict(args):
    from pipeline import serving
    try:
        count = serving.predict_files(args.model, args.data, args.out)
    except (FileNotFoundError, KeyError, ValueError) as error:
        print(f"lt4rec: {error}", file=sys.stderr)
        return 1
    print(f"scored {count} examples", file=sys.stderr)
    return 0


def _kubeflow(args):
    overrides = {key: getattr(args, attr) for key, attr in (
        ("image", "image"), ("pipeline_root", "pipeline_root"), ("data_root", "data_root"),
        ("serving_dir", "serving_dir"), ("statistics_dir", "statistics_dir"),
        ("endpoint", "endpoint"), ("namespace", "namespace"),
        ("trainer_gpus", "gpus")) if getattr(args, attr) is not None}
    config = Config.load(args.config, {"kubeflow": overrides}, spec_path=args.spec)
    if args.action == "compile":
        from kubeflow import runner
        if args.schema:
            _check_schema_file(config, args.schema)
        directory, name = os.path.split(os.path.abspath(args.pipeline))
        print(f"wrote {runner.compile_spec(config, directory, name)}")
        return 0
    caching = False if args.no_cache else None
    from kubeflow import submit
    # Refused before anything connects or runs: a missing spec, an unknown or ill-typed value.
    parameters = submit.run_arguments(submit.read_pipeline_spec(args.pipeline),
                                      submit.parse_assignments(args.param))
    if args.action == "emulate":
        return _emulate(args.pipeline, config, args.state, caching, parameters)
    client = submit.connect(config.kubeflow, args.token_file, args.cookies_file)
    if args.action == "schedule":
        job_id = submit.schedule(args.pipeline, config, args.cron, args.interval_seconds,
                                 enable_caching=caching, client=client, parameters=parameters)
        print(f"scheduled recurring run {job_id} on {config.kubeflow.endpoint}")
        return 0
    run_id = submit.submit(args.pipeline, config, enable_caching=caching, client=client,
                           parameters=parameters)
    print(f"submitted run {run_id} to {config.kubeflow.endpoint}")
    return 0


def _emulate(spec, config, state, enable_caching, parameters):
    import tempfile
    from kubeflow import backend_emulator, submit
    if "InfraValidator" in submit.read_pipeline_spec(spec)["root"]["dag"]["tasks"]:
        print("lt4rec: warning: the spec has the InfraValidator push gate, which needs a "
              "Kubernetes API to start TF Serving in: here it refuses every push (compile with "
              "kubeflow.infra_validation: false to emulate)", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        package, _ = submit.kfp_package(spec, tmp, config.kubeflow)
        kf = config.kubeflow
        # The pods' S3 secret (kubeflow.s3_secret) holds what this environment has.
        secrets = {kf.s3_secret: {key: os.environ[env] for key, env in kf.s3_secret_keys.items()
                                  if env in os.environ}} if kf.s3_secret else {}
        try:
            results = backend_emulator.Backend(state, secrets=secrets).run(
                package, config.kubeflow.pipeline_root, enable_caching=enable_caching,
                parameters=parameters)
        except (backend_emulator.BackendRefusal, backend_emulator.TaskFailed) as error:
            print(f"lt4rec: {error}", file=sys.stderr)
            return 1
    for name, result in results.items():
        seconds = f" in {result['seconds']} s" if "seconds" in result else ""
        print(f"{name}: {result['state']}{seconds}")
    return 0


def _run(args):
    from absl import logging as absl_logging
    from pipeline import console
    # absl's default verbosity is WARNING; TensorFlow re-applies it after every SavedModel
    # save, which would hide TFX's step records (INFO) from then on.
    absl_logging.set_verbosity(absl_logging.INFO)
    log = console.log_path(args.root)
    with contextlib.nullcontext() if args.verbose else console.quiet() as session:
        failure, result = _run_pipeline(args, session, log)
    if failure:
        print(failure + ("" if args.verbose else f" (full log: {log})"), file=sys.stderr)
        return 1
    print(result)
    return 0


def _run_pipeline(args, session, log):
    """Run the pipeline of `lt4rec run` (its log kept at `log` once the input and configuration
    passed their checks, with a quiet `session`); (failure message or None, rendered summary)."""
    from pipeline import local_runner, summary
    from pipeline.pipeline import SCHEMA_PATH
    config = run_config(args)
    schema = args.schema or SCHEMA_PATH
    _check_schema_file(config, schema)
    if args.data and not os.path.isdir(args.data):
        raise ConfigError(f"invalid configuration: --data {args.data!r} is not a directory")
    if args.data:
        input_files(args.data, config, args.span)
    if session:
        session.keep_log_at(log)
        session.steps.stream.write(f"lt4rec run: one line per step; library logs in {log} "
                                   f"(-v shows them here)\n")
    data = args.data or local_runner.default_data(args.root, config)
    layout = local_runner.RunLayout(args.root)
    started = time.time()
    try:
        outputs = local_runner.run(data, args.root, config, enable_cache=not args.no_cache,
                                   schema_path=schema, span=args.span)
    except Exception as error:  # the failing component's own message is what the user needs
        logging.exception("pipeline run failed")
        node = _failed_node(layout, since=started)
        unreadable = unreadable_input(data, config, args.span) \
            if node == "ImportExampleGen" else None
        reason = (f"input file {unreadable[0]} is not a readable TFRecord: {unreadable[1]}"
                  if unreadable else f"{type(error).__name__}: {error}")
        return f"lt4rec: pipeline run failed{f' in {node}' if node else ''}: {reason}", None
    return None, summary.render(summary.build(outputs, layout, config))


def run_config(args):
    """The config of `lt4rec run`: defaults, --spec, --config, then its flags."""
    return Config.load(args.config, spec_path=args.spec,
                       overrides={"ticket": {"reuse": "never"}} if args.search_tickets else None)


def _check_schema_file(config, schema):
    """ConfigError unless `schema` is a file matching the config's spec."""
    from pipeline.pipeline import check_schema
    if not os.path.isfile(schema):
        raise ConfigError(f"invalid configuration: --schema {schema!r} is not a file")
    check_schema(config, schema)


def input_files(data, config, span=None):
    """{split pattern: files} ImportExampleGen reads under `data` (in the spans layout: of each
    span of the window up to `span` or the newest); ConfigError if one is empty."""
    import tensorflow as tf
    from components.split_example_gen import spans
    from pipeline.pipeline import split_configs
    input_config, _, options, _ = split_configs(data, config, span)
    window = json.loads(options)["window_spans"]
    if window:
        window = spans.window(data, spans.newest(data) if span is None else span, window)
    found = {}
    for split in input_config.splits:
        for pattern in ([spans.in_span(split.pattern, n) for n in window] if window
                        else [split.pattern]):
            found[pattern] = sorted(path for path in tf.io.gfile.glob(
                os.path.join(data, pattern)) if not tf.io.gfile.isdir(path))
            if not found[pattern]:
                raise ConfigError(f"invalid input: --data {data!r} has no input files matching "
                                  f"{pattern!r}")
    return found


def unreadable_input(data, config, span=None):
    """(path, reason) of the first input file that is not a readable TFRecord, else None.

    Files are read with the compression ImportExampleGen infers from their name (`.gz`: gzip).
    Called after ImportExampleGen failed: its own error does not say which file was bad.
    """
    import tensorflow as tf
    for files in input_files(data, config, span).values():
        for path in files:
            dataset = tf.data.TFRecordDataset(
                path, compression_type="GZIP" if path.endswith(".gz") else "")
            try:
                for _ in dataset.batch(4096):
                    pass
            except tf.errors.OpError as error:
                return path, re.sub(r"^\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\].*$", "",
                                    error.message, flags=re.S)
    return None


def _failed_node(layout, since):
    """Node id of the last execution in MLMD if it failed and started after `since`, else None."""
    if not os.path.exists(layout.metadata_path):
        return None
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    store = metadata_store.MetadataStore(layout.connection())
    executions = store.get_executions()
    last = max(executions, key=lambda e: e.id) if executions else None
    if (last is None or last.last_known_state != metadata_store_pb2.Execution.FAILED
            or last.create_time_since_epoch < since * 1000):
        return None
    nodes = [c.name for c in store.get_contexts_by_execution(last.id) if c.type == "node"]
    return nodes[0].split(".", 1)[-1] if nodes else None


if __name__ == "__main__":
    sys.exit(main())
