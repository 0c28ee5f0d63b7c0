"""The `lt4rec` command: run the pipeline, score with a pushed model, generate synthetic data."""
import argparse
import logging
import os
import shutil
import sys

from pipeline.config import Config, ConfigError


def _parser():
    parser = argparse.ArgumentParser(prog="lt4rec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the pipeline locally (LocalDagRunner)")
    run.add_argument("--data", help="directory of gzip TFRecords (with train/ and eval/ "
                     "subdirectories, or hash-split); default: generate synthetic data")
    run.add_argument("--root", default="runs/default", help="all artifacts go under this directory")
    run.add_argument("--config", help="JSON or YAML file overriding the defaults")
    run.add_argument("--no-cache", action="store_true", help="re-execute every component")

    predict = sub.add_parser("predict", help="score TFRecords with a pushed model (JSON lines)")
    predict.add_argument("--model", required=True,
                         help="serving directory (latest version is used) or a version directory")
    predict.add_argument("--data", required=True, help="TFRecord file or glob (.gz = gzip)")
    predict.add_argument("--out", help="output file (default: stdout)")

    synth = sub.add_parser("synth", help="write deterministic synthetic LT4REC TFRecords")
    synth.add_argument("--out", required=True)
    synth.add_argument("--rows", type=int, default=Config().data.synthetic_rows)
    synth.add_argument("--seed", type=int, default=Config().data.synthetic_seed)
    synth.add_argument("--splits", action="store_true", help="write train/ and eval/ subdirectories")
    return parser


def main(argv=None):
    """Entry point of the `lt4rec` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.command == "synth":
            return _synth(args)
        if args.command == "predict":
            return _predict(args)
        return _run(args)
    except ConfigError as error:
        print(f"lt4rec: {error}", file=sys.stderr)
        return 2


def _synth(args):
    from pipeline import synthetic_data
    paths = synthetic_data.write_dataset(args.out, rows=args.rows, seed=args.seed,
                                         splits=args.splits)
    print(f"wrote {args.rows} examples to {len(paths)} file(s) under {args.out}")
    return 0


def _predict(args):
    from pipeline import serving
    try:
        count = serving.predict_files(args.model, args.data, args.out)
    except (FileNotFoundError, KeyError) as error:
        print(f"lt4rec: {error}", file=sys.stderr)
        return 1
    print(f"scored {count} examples", file=sys.stderr)
    return 0


def _run(args):
    config = Config.load(args.config)
    data = args.data or _default_data(args.root, config)
    if not os.path.isdir(data):
        raise ConfigError(f"invalid configuration: --data {data!r} is not a directory")
    from pipeline import local_runner, summary
    try:
        outputs = local_runner.run(data, args.root, config, enable_cache=not args.no_cache)
    except Exception as error:  # the failing component's own message is what the user needs
        logging.exception("pipeline run failed")
        print(f"lt4rec: pipeline run failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(summary.render(summary.build(outputs, local_runner.RunLayout(args.root), config)))
    return 0


def _default_data(root, config):
    """Generate (once) the default synthetic data set under the run root."""
    from pipeline import synthetic_data
    rows, seed = config.data.synthetic_rows, config.data.synthetic_seed
    out = os.path.join(os.path.abspath(root), "data", f"synthetic-{rows}-seed{seed}")
    if not os.path.isdir(out):
        shutil.rmtree(out + ".partial", ignore_errors=True)
        synthetic_data.write_dataset(out + ".partial", rows=rows, seed=seed)
        os.replace(out + ".partial", out)
    return out


if __name__ == "__main__":
    sys.exit(main())
