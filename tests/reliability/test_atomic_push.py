"""A crash during a push never leaves a version directory TF Serving would load half-written,
on a local disk and on an S3-compatible server."""
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import s3_process_env
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


# The same pushes on an S3-compatible server (moto, conftest `s3_server`). TensorFlow's s3://
# filesystem runs in subprocesses only (tensorflow-io's client aborts at interpreter exit,
# modules/filesystems.py); this process lists the bucket through boto3.
S3_BUCKET = "lt4rec-push"
_ON_S3 = textwrap.dedent("""
    import json, os, signal, sys
    from modules import filesystems
    filesystems.register_s3()
    filesystems.skip_native_teardown_at_exit()
    from components.atomic_pusher import executor
    from modules import serving_dir
    from pipeline import serving
    real_copy = executor.fileio.copy

    def copy_then_die(when):
        # log every file copied; SIGKILL this process after a copy to a `when(dst)` path
        def copy(src, dst, *args, **kwargs):
            real_copy(src, dst, *args, **kwargs)
            with open(os.environ["COPY_LOG"], "a") as log:
                log.write(dst + "\\n")
            if when(dst):
                os.kill(os.getpid(), signal.SIGKILL)
        executor.fileio.copy = copy
    copy_then_die(lambda dst: False)

    def newest(base):
        session = serving.ServingSession(base)
        return {"newest": serving_dir.newest_version(base), "session": session.path,
                "ctr": session.score([b""])["ctr"].tolist()}
""")


@pytest.fixture
def on_s3(s3_server, tmp_path):
    """(run a script on S3: code -> its last stdout line as JSON, the serving directory, a
    listing of its keys, the log of the files the script copied)."""
    endpoint, client = s3_server
    if S3_BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=S3_BUCKET)
    prefix = f"{tmp_path.name}/serving"
    copy_log = tmp_path / "copies.log"
    env = s3_process_env(endpoint, COPY_LOG=str(copy_log))

    def run(code, expect_killed=False):
        done = subprocess.run([sys.executable, "-c", _ON_S3 + textwrap.dedent(code)],
                              cwd=helpers.REPO, env=env, capture_output=True, text=True,
                              timeout=600, check=False)
        assert done.returncode == (-9 if expect_killed else 0), done.stderr[-3000:]
        lines = done.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines and not expect_killed else None

    def keys():
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET,
                                                                   Prefix=prefix + "/")
        return sorted(o["Key"][len(prefix) + 1:] for p in pages for o in p.get("Contents", []))

    def copies():
        return copy_log.read_text().split() if copy_log.exists() else []
    return run, f"s3://{S3_BUCKET}/{prefix}", keys, copies


def _push_v1_on_s3(tmp_path, run, base):
    model = _saved_model(tmp_path / "v1", 1.0)
    run(f"""
        executor.push_atomically({model!r}, {base!r}, version=1)
        print(json.dumps(newest({base!r})))""")


def test_on_s3_a_push_copies_saved_model_pb_last_and_loads(tmp_path, on_s3):
    run, base, keys, copies = on_s3
    _push_v1_on_s3(tmp_path, run, base)
    published = [c for c in copies() if "/.incomplete-" not in c]
    assert published[-1] == f"{base}/1/saved_model.pb" and len(published) > 2
    assert keys() == [f"1/{name}" for name in _files(str(tmp_path / "v1"))]
    assert run(f"print(json.dumps(newest({base!r})))") == {
        "newest": f"{base}/1", "session": f"{base}/1", "ctr": [pytest.approx(0.1)]}


def _push_v2_killed_on_s3(tmp_path, run, base, when):
    """Push version 1, then version 2 killed after its first copy to a path containing `when`;
    returns version 2's model directory."""
    _push_v1_on_s3(tmp_path, run, base)
    model = _saved_model(tmp_path / "v2", 2.0)
    run(f"""
        copy_then_die(lambda dst: {when!r} in dst)
        executor.push_atomically({model!r}, {base!r}, version=2)""", expect_killed=True)
    return model


def test_on_s3_a_push_killed_mid_publish_leaves_no_version_that_loads_or_is_picked(
        tmp_path, on_s3):
    run, base, keys, _ = on_s3
    model = _push_v2_killed_on_s3(tmp_path, run, base, "/2/")
    partial = [k for k in keys() if k.startswith("2/")]
    assert partial and "2/saved_model.pb" not in partial        # cut off mid-publish
    # TF Serving cannot load version 2 (no saved_model.pb); the resolver passes it over.
    assert run(f"print(json.dumps(newest({base!r})))") == {
        "newest": f"{base}/1", "session": f"{base}/1", "ctr": [pytest.approx(0.1)]}
    # The next push publishes a complete newer version, which becomes the newest.
    assert run(f"""
        version, _ = executor.push_atomically({model!r}, {base!r}, version=3)
        print(json.dumps(dict(newest({base!r}), version=version)))""") == {
        "version": "3", "newest": f"{base}/3", "session": f"{base}/3",
        "ctr": [pytest.approx(0.2)]}


def test_on_s3_a_push_killed_while_staging_publishes_nothing(tmp_path, on_s3):
    run, base, keys, _ = on_s3
    _push_v2_killed_on_s3(tmp_path, run, base, "/.incomplete-")
    others = {k.split("/")[0] for k in keys()} - {"1"}
    assert others and all(name.startswith(executor.INCOMPLETE_PREFIX) for name in others)
    assert run(f"print(json.dumps(newest({base!r})))")["newest"] == f"{base}/1"


def test_on_s3_the_next_push_removes_stale_staging_only(tmp_path, on_s3, s3_server):
    run, base, keys, _ = on_s3
    _push_v1_on_s3(tmp_path, run, base)
    now = int(time.time())
    crashed = f"{executor.INCOMPLETE_PREFIX}{now - 2 * 24 * 3600}-dead"
    running = f"{executor.INCOMPLETE_PREFIX}{now - 60}-live"
    prefix = base[len(f"s3://{S3_BUCKET}/"):]
    for name in (crashed, running):
        s3_server[1].put_object(Bucket=S3_BUCKET, Key=f"{prefix}/{name}/variables/x", Body=b"x")
    model = _saved_model(tmp_path / "v2", 2.0)
    run(f"""
        executor.push_atomically({model!r}, {base!r}, version=2, now={now})
        print("{{}}")""")
    assert sorted({k.split("/")[0] for k in keys()}) == sorted([running, "1", "2"])
    assert [k for k in keys() if k.startswith("2/")] == [f"2/{f}" for f in _files(model)]
