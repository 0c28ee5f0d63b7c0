"""Shared helpers of the reliability suite: write (bad) data, run `lt4rec run`, read MLMD."""
import os
import subprocess
import sys
import time

import tensorflow as tf
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from conftest import tiny_pipeline_config
from pipeline import cli, mlmd, synthetic_data

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NON_UTF8_KEYWORDS = (b"\xff\xfe\x80abc", b"\xc3\x28")   # invalid UTF-8 byte sequences


def read_examples(directory):
    """Every tf.Example of the gzip TFRecords under `directory` (recursively, in file order)."""
    files = sorted(os.path.join(folder, name) for folder, _, names in os.walk(directory)
                   for name in names)
    return [tf.train.Example.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def write_examples(path, examples):
    """Write tf.Examples to one gzip TFRecord file (directories created)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path, "GZIP") as writer:
        for example in examples:
            writer.write(example.SerializeToString())
    return path


def edited_dataset(tmp_path, edit, rows=300, seed=5, splits=False):
    """Synthetic data rewritten through `edit(index, example, split)`; returns its directory."""
    good, bad = str(tmp_path / "good"), str(tmp_path / "bad")
    synthetic_data.write_dataset(good, rows=rows, seed=seed, splits=splits)
    for split in (("train", "eval") if splits else ("",)):
        examples = read_examples(os.path.join(good, split))
        for i, example in enumerate(examples):
            edit(i, example, split)
        write_examples(os.path.join(bad, split, "part-00000.tfrecord.gz"), examples)
    return bad


def set_feature(example, name, kind, values):
    """Replace feature `name` by `values` in `kind` ("bytes_list", "int64_list", "float_list")."""
    feature = example.features.feature[name]
    feature.Clear()
    getattr(feature, kind).value.extend(values)


def config_file(tmp_path, **overrides):
    """The tiny CI pipeline config written as JSON; returns its path."""
    path = tmp_path / "config.json"
    path.write_text(tiny_pipeline_config(**overrides).to_json())
    return str(path)


def run_cli(capsys, data, root, config):
    """`lt4rec run` in this process; returns (exit code, stderr)."""
    code = cli.main(["run", "--data", str(data), "--root", str(root), "--config", str(config)])
    return code, capsys.readouterr().err


def start_run(data, root, config, log_path):
    """`lt4rec run` as a subprocess in its own process group, output to `log_path`."""
    log = open(log_path, "w", encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", "--data", str(data), "--root", str(root),
         "--config", str(config)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_file(process, pattern, log_path, timeout=600):
    """Wait until a file matches `pattern`; fail if the process exits first or on timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = tf.io.gfile.glob(pattern)
        if found:
            return found[0]
        if process.poll() is not None:
            raise AssertionError(f"run exited ({process.returncode}) before {pattern} appeared:\n"
                                 + open(log_path, encoding="utf-8").read()[-3000:])
        time.sleep(0.2)
    raise AssertionError(f"{pattern} did not appear within {timeout} s")


def executions_by_run(metadata_path):
    """[{node id: execution}] per pipeline run, in run order, from the run root's MLMD store."""
    store = metadata_store.MetadataStore(mlmd.connection_config(metadata_path))
    runs = []
    for run in sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.id):
        nodes = {}
        for execution in store.get_executions_by_context(run.id):
            for context in store.get_contexts_by_execution(execution.id):
                if context.type == "node":
                    nodes[context.name.split(".", 1)[1]] = execution
        runs.append(nodes)
    return runs


def events(metadata_path, execution, kind):
    """{key: [artifact]} of an execution's INPUT or OUTPUT events."""
    store = metadata_store.MetadataStore(mlmd.connection_config(metadata_path))
    wanted = getattr(metadata_store_pb2.Event, kind)
    found = [e for e in store.get_events_by_execution_ids([execution.id]) if e.type == wanted]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in found])}
    by_key = {}
    for event in found:
        by_key.setdefault(event.path.steps[0].key, []).append(artifacts[event.artifact_id])
    return by_key


def all_artifact_uris(metadata_path):
    """URIs of every artifact MLMD knows."""
    store = metadata_store.MetadataStore(mlmd.connection_config(metadata_path))
    return [a.uri for a in store.get_artifacts()]
