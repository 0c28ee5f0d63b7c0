"""A crash during a push never leaves a version directory TF Serving would load half-written."""
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from components.atomic_pusher import executor
from modules import serving_dir
from pipeline import serving
from reliability import helpers


class _Scale(tf.Module):
    """A minimal servable: examples -> one output, scaled by `factor`."""

    def __init__(self, factor):
        super().__init__()
        self.factor = tf.Variable(float(factor))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        return {"ctr": tf.fill(tf.shape(examples), 0.1) * self.factor}


def _saved_model(path, factor):
    module = _Scale(factor)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return str(path)


def _files(directory):
    return sorted(os.path.relpath(os.path.join(folder, name), directory)
                  for folder, _, names in os.walk(directory) for name in names)


_KILLED_PUSH = textwrap.dedent("""
    import os, shutil, signal, sys
    from components.atomic_pusher import executor

    def copy_one_file_then_die(src, dst, *args, **kwargs):
        os.makedirs(dst)
        shutil.copy(os.path.join(src, "saved_model.pb"), dst)
        os.kill(os.getpid(), signal.SIGKILL)

    executor.io_utils.copy_dir = copy_one_file_then_die
    executor.push_atomically(sys.argv[1], sys.argv[2], version=2)
""")


@pytest.fixture
def serving_dir_with_version_1(tmp_path):
    base = str(tmp_path / "serving")
    executor.push_atomically(_saved_model(tmp_path / "v1", 1.0), base, version=1)
    return base


def test_push_killed_mid_copy_leaves_no_loadable_partial_version(tmp_path,
                                                                 serving_dir_with_version_1):
    base = serving_dir_with_version_1
    model = _saved_model(tmp_path / "v2", 2.0)
    killed = subprocess.run([sys.executable, "-c", _KILLED_PUSH, model, base], cwd=helpers.REPO)
    assert killed.returncode == -9
    (staging,) = [name for name in os.listdir(base) if name != "1"]
    assert staging.startswith(executor.INCOMPLETE_PREFIX)
    # TF Serving (and ServingSession) only see numeric version directories: version 1 serves.
    assert serving.latest_version(base) == os.path.join(base, "1")
    scores = serving.ServingSession(base).score([b""])
    np.testing.assert_allclose(scores["ctr"], [0.1])


def test_next_push_removes_stale_staging_only_and_publishes_a_complete_version(
        tmp_path, serving_dir_with_version_1):
    """A crashed push's staging (two days old) is removed; a running push's (fresh) is not."""
    base = serving_dir_with_version_1
    model = _saved_model(tmp_path / "v2", 2.0)
    now = time.time()
    crashed = f"{executor.INCOMPLETE_PREFIX}{int(now) - 2 * 24 * 3600}-dead"
    running = f"{executor.INCOMPLETE_PREFIX}{int(now) - 60}-live"
    for name in (crashed, running):
        os.makedirs(os.path.join(base, name, "variables"))
    version, path = executor.push_atomically(model, base, version=2, now=now)
    assert (version, sorted(os.listdir(base))) == ("2", [running, "1", "2"])
    assert _files(path) == _files(model)
    np.testing.assert_allclose(serving.ServingSession(base).score([b""])["ctr"], [0.2])


def test_crash_between_copy_and_rename_publishes_nothing(tmp_path, serving_dir_with_version_1,
                                                         monkeypatch):
    base = serving_dir_with_version_1

    def crash(*args, **kwargs):
        raise OSError("simulated crash before the rename")
    monkeypatch.setattr(executor.fileio, "rename", crash)
    with pytest.raises(OSError, match="simulated crash"):
        executor.push_atomically(_saved_model(tmp_path / "v2", 2.0), base, version=2)
    assert os.listdir(base) == ["1"]            # its own staging removed too


def test_push_never_overwrites_an_existing_version(tmp_path, serving_dir_with_version_1):
    base = serving_dir_with_version_1
    version, _ = executor.push_atomically(_saved_model(tmp_path / "v2", 2.0), base, version=1)
    assert version == "2"
    np.testing.assert_allclose(
        serving.ServingSession(os.path.join(base, "1")).score([b""])["ctr"], [0.1])


def test_a_version_without_its_saved_model_pb_is_never_the_newest(tmp_path,
                                                                  serving_dir_with_version_1):
    """A version directory a push is still copying into, or was cut off in (object stores have
    no directory rename: files arrive one by one), is passed over by everything that reads the
    newest push: the no-regression baseline, warm start, ticket reuse and `lt4rec predict`."""
    base = serving_dir_with_version_1
    partial = os.path.join(base, "7")
    os.makedirs(os.path.join(partial, "variables"))
    with open(os.path.join(partial, "variables", "variables.index"), "wb") as f:
        f.write(b"half")
    assert serving_dir.newest_version(base) == os.path.join(base, "1")
    assert serving.ServingSession(base).path == os.path.join(base, "1")
