"""Pusher executor whose filesystem push is atomic: copy aside, then rename into place.

TF Serving watches `<base_directory>/<version>/` and loads any numeric version directory it sees
(tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc aspires every
numeric child; nothing checks for saved_model.pb). TFX's Pusher copies straight into that
directory, so a crash mid-copy leaves a half-written version. Here the copy goes to this push's
own `<base_directory>/.incomplete-<start time>-<random>/` (not numeric, so ignored by TF Serving)
and is renamed to `<version>` only when complete; if another push took that number meanwhile,
the next one. A failed push removes its staging; staging directories of crashed pushes are
removed by a later push once a day old, so a concurrent push's is never touched.

On an object store (s3://, gs://) there is no directory rename: TensorFlow's filesystems copy
then delete object by object, in listing order, so `saved_model.pb` would land before
`variables/`. There the staging's files are copied into `<version>` with `saved_model.pb` last.
A version without it is passed over by everything reading the newest push
(`serving_dir.newest_version`); TF Serving fails to load it and retries
(`--max_num_load_retries`, `--load_retry_interval_micros`) while the copy completes, and keeps
serving the previous version meanwhile, or for good if the push was cut off.
"""
import os
import time
import uuid

import tensorflow as tf

from tfx.components.pusher import executor as tfx_pusher
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.utils import io_utils, proto_utils

INCOMPLETE_PREFIX = ".incomplete-"   # + <start unix seconds>-<random>: one push's staging
STALE_STAGING_SECONDS = 24 * 3600
SAVED_MODEL = "saved_model.pb"


class Executor(tfx_pusher.Executor):
    """Pushes blessed models to a versioned directory atomically."""

    def Do(self, input_dict, output_dict, exec_properties):
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict["pushed_model"])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties["push_destination"], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError("AtomicPusher pushes to a filesystem destination only")
        model_path = self.GetModelPath(input_dict)
        version, serving_path = push_atomically(model_path,
                                                destination.filesystem.base_directory)
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=version)


def push_atomically(model_path, base_directory, version=None, now=None):
    """Copy `model_path` to `base_directory/<version>` via this push's own staging directory and
    a rename; returns (version, path). Staging directories of other pushes are left alone
    unless older than `STALE_STAGING_SECONDS` (crashed pushes); this push's own is removed if
    it fails."""
    fileio.makedirs(base_directory)
    now = time.time() if now is None else now
    sweep_stale_staging(base_directory, now)
    staging = os.path.join(base_directory,
                           f"{INCOMPLETE_PREFIX}{int(now)}-{uuid.uuid4().hex[:12]}")
    try:
        io_utils.copy_dir(model_path, staging)
        version = int(version or now)
        while True:                      # never overwrite or skip: a new push is a new version
            final = os.path.join(base_directory, str(version))
            if not fileio.exists(final):
                try:
                    publish(staging, final)
                    return str(version), final
                except (OSError, tf.errors.OpError):
                    # Only a local rename loses to a concurrent push taking the number; a
                    # failed object-store copy must not go on into the next number.
                    if "://" in final or not fileio.exists(final):
                        raise
            version += 1
    except BaseException:
        if fileio.exists(staging):
            fileio.rmtree(staging)
        raise


def publish(staging, final):
    """Move the complete `staging` directory to `final`: one rename on a local disk (atomic); on
    an object store, a copy of every file with `saved_model.pb` last, then the staging's
    removal."""
    if "://" not in final:
        fileio.rename(staging, final)
        return
    files = sorted((os.path.join(folder[len(staging):].strip("/"), name)
                    for folder, _, names in fileio.walk(staging) for name in names),
                   key=lambda path: (path == SAVED_MODEL, path))
    for path in files:
        fileio.makedirs(os.path.dirname(os.path.join(final, path)))
        fileio.copy(os.path.join(staging, path), os.path.join(final, path))
    fileio.rmtree(staging)


def staging_started(name):
    """The start time (unix seconds) in a staging directory's name; None for other names."""
    stem = name.rstrip("/")
    if not stem.startswith(INCOMPLETE_PREFIX):
        return None
    started = stem[len(INCOMPLETE_PREFIX):].split("-", 1)[0]
    return int(started) if started.isdigit() else 0


def sweep_stale_staging(base_directory, now):
    """Remove staging directories started more than `STALE_STAGING_SECONDS` before `now` (left
    by crashed pushes; no push takes that long), never a running push's."""
    if not fileio.isdir(base_directory):     # an object store has no empty directories
        return
    for name in fileio.listdir(base_directory):
        started = staging_started(name)
        if started is not None and now - started > STALE_STAGING_SECONDS:
            fileio.rmtree(os.path.join(base_directory, name))
