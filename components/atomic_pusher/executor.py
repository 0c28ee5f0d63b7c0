"""Pusher executor whose filesystem push is atomic: copy aside, then rename into place.

TF Serving watches `<base_directory>/<version>/` and loads any numeric version directory it sees.
TFX's Pusher copies straight into that directory, so a crash mid-copy leaves a half-written
version. Here the copy goes to `<base_directory>/.incomplete-<version>/` (not numeric, so ignored by
TF Serving) and is renamed to `<version>` only when complete. Stale `.incomplete-*` directories from
crashed pushes are removed before a new push.
"""
import os
import time

from tfx.components.pusher import executor as tfx_pusher
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.utils import io_utils, proto_utils

INCOMPLETE_PREFIX = ".incomplete-"


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


def push_atomically(model_path, base_directory, version=None):
    """Copy `model_path` to `base_directory/<version>` via a temporary directory and a rename."""
    fileio.makedirs(base_directory)
    for name in fileio.listdir(base_directory):
        if name.rstrip("/").startswith(INCOMPLETE_PREFIX):
            fileio.rmtree(os.path.join(base_directory, name))
    version = int(version or time.time())
    while fileio.exists(os.path.join(base_directory, str(version))):
        version += 1                     # never overwrite or skip: a new push is a new version
    tmp = os.path.join(base_directory, f"{INCOMPLETE_PREFIX}{version}")
    io_utils.copy_dir(model_path, tmp)
    final = os.path.join(base_directory, str(version))
    fileio.rename(tmp, final)
    return str(version), final
