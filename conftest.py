"""Shared pytest fixtures: toy transformed data with planted signal and a small config."""
import os
import shutil
import sys

import numpy as np
import pytest
import tensorflow as tf

from modules import data, features
from modules.inputs import TrainingInputs
from modules.config import Config

TOY_VOCAB = 40


def toy_arrays(rows, seed):
    """Transformed-feature arrays (ids, labels) whose labels depend on a few ids."""
    rng = np.random.default_rng(seed)
    arrays = {name: rng.integers(0, TOY_VOCAB, rows) for name in features.SINGLE_VALUED}
    arrays.update({name: np.where(rng.random((rows, 4)) < 0.7,
                                  rng.integers(0, TOY_VOCAB, (rows, 4)), -1)
                   for name in features.MULTI_VALUED})
    click_logit = np.where(arrays["FEA_VID"] % 2 == 0, 1.5, -1.5) + rng.normal(0, 0.5, rows)
    label = (click_logit > 0).astype(np.int64)
    completion = np.where(arrays["FEA_CP"] % 3 == 0, 0.95, 0.4) * label
    arrays[features.LABEL] = label
    arrays[features.CVR_LABEL] = completion.astype(np.float32)
    arrays[features.CONVERSION] = (completion >= 0.8).astype(np.float32)
    arrays[features.PCTR_SCORE] = rng.random(rows).astype(np.float32)
    return arrays


def label_arrays(spec, raw_records):
    """{column: numpy array} of the spec's label columns and rule labels/rows, computed from
    serialized raw tf.Examples with the numpy rules (as Transform computes them on TF)."""
    from modules import rules
    parsed = [tf.train.Example.FromString(r).features.feature for r in raw_records]
    arrays = {}
    for column in spec.label_columns():
        kind = parsed[0][column].WhichOneof("kind")
        arrays[column] = np.array([getattr(p[column], kind).value[0] for p in parsed])
    for name, rule in spec.rule_columns().items():
        arrays[name] = rules.holds(rules.parse(rule), arrays, rules.NUMPY).astype(np.float32)
    return arrays


def small_config(**overrides):
    """A config small enough for unit tests (tiny MLP, few rounds)."""
    # Losses are read after every step, so tests can follow training step by step.
    base = {"model": {"hidden_units": [16, 8], "embedding_dim": 4, "batch_size": 64,
                      "learning_rate": 0.01, "seed": 3, "log_every_steps": 1},
            "ticket": {"rounds": 2, "final_density": 0.25,
                       "stopping": {"max_epochs": 2, "patience": 1}},
            "mtl": {"stopping": {"max_epochs": 2, "patience": 1}}}
    for section, values in overrides.items():
        base.setdefault(section, {}).update(values)
    return Config.from_dict(base)


def toy_examples(directory, rows, seed, input_config=None):
    """`toy_arrays(rows, seed)` written as a gzip TFRecord file under `directory` and opened
    with the trainers' streaming reader."""
    arrays = toy_arrays(rows, seed)
    path = data.write_examples(arrays, os.path.join(str(directory), f"toy-{rows}-{seed}.gz"))
    return data.Examples([path], data.feature_spec_of(arrays),
                         input_config or Config().input)


def toy_training_inputs(directory, rows=(600, 300, 300), strategy=None, input_config=None):
    """TrainingInputs over toy files (train, validation, eval rows), default strategy."""
    os.makedirs(str(directory), exist_ok=True)
    train, validation, evaluation = (toy_examples(directory, n, seed, input_config)
                                     for n, seed in zip(rows, (1, 3, 2)))
    return TrainingInputs(
        train=train, validation=validation, evaluation=evaluation,
        vocab_sizes={group: TOY_VOCAB for group in Config().spec.vocabulary_groups()},
        strategy=strategy or tf.distribute.get_strategy())


@pytest.fixture
def toy_inputs(tmp_path):
    """`toy_training_inputs`: 600 train, 300 validation, 300 eval rows, default strategy."""
    return toy_training_inputs(tmp_path)


@pytest.fixture(scope="module")
def module_toy_inputs(tmp_path_factory):
    """`toy_training_inputs` once per module (for modules whose searches are the cost)."""
    return toy_training_inputs(tmp_path_factory.mktemp("toy"))


def tiny_pipeline_config(**overrides):
    """Whole-pipeline config for CI: small data, small MLP, in-process Beam, reachable gates."""
    base = {"data": {"synthetic_rows": 800},
            "model": {"hidden_units": [32, 16], "batch_size": 64, "learning_rate": 0.003},
            "ticket": {"rounds": 2, "final_density": 0.3, "stopping": {"max_epochs": 3}},
            "mtl": {"stopping": {"max_epochs": 3}},
            "evaluation": {"auc_lower_bound": 0.0, "max_auc_regression": 1.0},
            "beam_pipeline_args": ["--direct_running_mode=in_memory", "--direct_num_workers=1"]}
    for section, values in overrides.items():
        base.setdefault(section, {}).update(values)
    return Config.from_dict(base)


def make_tiny_run(root):
    """A whole-pipeline run on 800 synthetic rows under `root` (a pathlib.Path)."""
    from pipeline import local_runner, summary, synthetic_data
    data_dir = root / "data"
    synthetic_data.write_dataset(str(data_dir), rows=800, seed=11)
    config = tiny_pipeline_config()
    outputs = local_runner.run(str(data_dir), str(root), config)
    layout = local_runner.RunLayout(str(root))
    return {"root": root, "data": data_dir, "outputs": outputs, "layout": layout,
            "summary": summary.build(outputs, layout, config), "config": config}


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One tiny run shared by tests that read its artifacts (test_pipeline_e2e reruns it).

    `["pristine"]` is a copy of its root taken right after the run, for tests that read "the
    latest run" (test_report): the copied MLMD still points at the original's artifact files,
    which reruns only add to.
    """
    from pipeline import local_runner
    made = make_tiny_run(tmp_path_factory.mktemp("tiny_run"))
    pristine = tmp_path_factory.mktemp("tiny_run_pristine") / "root"
    shutil.copytree(made["root"], pristine, ignore=shutil.ignore_patterns("data"))
    made["pristine"] = dict(made, root=pristine, layout=local_runner.RunLayout(str(pristine)))
    return made


# Session fixtures holding a whole pipeline run: their users must share one pytest-xdist worker.
SHARED_SESSION_RUNS = ("tiny_run", "recovered_run")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Group tests for `make test`'s `pytest -n 2 --dist loadgroup`: one group per module (its
    module fixtures run once), and the modules using a shared session run in one group. First:
    pytest-xdist reads the groups in its own hook of the same name."""
    group_of = {}
    for item in items:
        shared = [name for name in SHARED_SESSION_RUNS if name in item.fixturenames]
        if shared or item.module.__name__ not in group_of:
            group_of[item.module.__name__] = shared[0] if shared else item.module.__name__
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group_of[item.module.__name__]))


def pytest_collection_finish(session):
    """Refuse to run ungrouped under `--dist loadgroup`: pytest-xdist 3.8 on pytest 9.2 drops
    every group silently (pytest-dev/pytest-xdist#1386), so each worker would repeat the other's
    module and session fixtures (whole pipeline runs)."""
    if getattr(session.config.option, "loadgroup", False) and session.items and \
            not all("@" in item.nodeid for item in session.items):
        message = ("--dist loadgroup did not group the tests (no '@group' in their node ids): "
                   "pytest-xdist ignores xdist_group marks with this pytest (pytest-dev/"
                   "pytest-xdist#1386); install the pinned versions (make setup)")
        sys.__stderr__.write(f"\nERROR: {message}\n")   # a worker's exception is not shown
        raise pytest.UsageError(message)


S3_KEYS = {"aws_access_key_id": "lt4rec-test", "aws_secret_access_key": "lt4rec-test-secret"}


def s3_process_env(endpoint, **extra):
    """This process's environment plus what a subprocess's S3 clients (TensorFlow's, boto3's)
    need to reach the test server at `endpoint`."""
    from modules import filesystems
    return dict(os.environ, **filesystems.s3_env(endpoint), **extra,
                AWS_ACCESS_KEY_ID=S3_KEYS["aws_access_key_id"],
                AWS_SECRET_ACCESS_KEY=S3_KEYS["aws_secret_access_key"])


@pytest.fixture(scope="session")
def s3_server():
    """A local S3-compatible server (moto's standalone server) on 127.0.0.1; yields
    (endpoint URL, a boto3 S3 client of it). Any bucket the tests create lives until the end."""
    import socket
    import subprocess
    import time
    import boto3
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **S3_KEYS)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.list_buckets()
            break
        except Exception:  # pylint: disable=broad-except
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError(f"the S3 test server did not start on {endpoint}")
            time.sleep(0.2)
    yield endpoint, client
    server.terminate()
    server.wait(timeout=30)
