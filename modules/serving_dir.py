"""What a serving directory holds: numbered SavedModel versions (as the pusher writes them), each
with `assets.extra/`, files beside the SavedModel that TF Serving does not load (the published
masks, the network checkpoint). Kept apart from `modules/export.py` so that the steps reading a
pushed model (warm start, ticket reuse) do not import the exporter's code."""
import os

import tensorflow as tf

EXTRA_DIR = "assets.extra"


def newest_version(base_directory):
    """Path of the highest numeric version under `base_directory` (a serving directory, as
    the pusher writes it), or None if there is none."""
    if not tf.io.gfile.isdir(base_directory):
        return None
    versions = [int(name.rstrip("/")) for name in tf.io.gfile.listdir(base_directory)
                if name.rstrip("/").isdigit()]
    return os.path.join(base_directory, str(max(versions))) if versions else None


def model_at(source):
    """`source` itself when it is a SavedModel directory, else the newest version under it (a
    serving directory); None when there is none (or no `source`)."""
    if source and not tf.io.gfile.exists(f"{source}/saved_model.pb"):
        return newest_version(source)
    return source or None
