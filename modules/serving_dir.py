"""What a serving directory holds: numbered SavedModel versions (as the pusher writes them), each
with `assets.extra/`, files beside the SavedModel that TF Serving does not load (the published
masks, the network checkpoint). Kept apart from `modules/export.py` so that the steps reading a
pushed model (warm start, ticket reuse) do not import the exporter's code."""
import os

import tensorflow as tf

EXTRA_DIR = "assets.extra"


def newest_version(base_directory):
    """Path of the highest numeric version under `base_directory` (a serving directory, as
    the pusher writes it) that holds a SavedModel, or None if there is none. A version
    directory without `saved_model.pb` (a push still copying, or cut off) is passed over, as TF
    Serving cannot load it either."""
    if not tf.io.gfile.isdir(base_directory):
        return None
    versions = sorted((int(name.rstrip("/")) for name in tf.io.gfile.listdir(base_directory)
                       if name.rstrip("/").isdigit()), reverse=True)
    for version in versions:
        path = os.path.join(base_directory, str(version))
        if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
            return path
    return None


def model_at(source):
    """`source` itself when it is a SavedModel directory, else the newest version under it (a
    serving directory); None when there is none (or no `source`)."""
    if source and not tf.io.gfile.exists(f"{source}/saved_model.pb"):
        return newest_version(source)
    return source or None
