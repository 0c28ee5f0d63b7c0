"""Task masks as plain arrays: one `.npz` per task, read with `allow_pickle=False`."""
import io
import os

import numpy as np
import tensorflow as tf

MASK_DIR = "masks"


def layer_key(index):
    """Array name of the mask of prunable layer `index`."""
    return f"mlp_{index}"


def save(uri, task_masks):
    """Write {task: [bool arrays]} under `uri/masks/<task>.npz` (written aside, then renamed)."""
    directory = os.path.join(uri, MASK_DIR)
    tf.io.gfile.makedirs(directory)
    for task, masks in task_masks.items():
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{layer_key(i): np.asarray(m, dtype=bool)
                                       for i, m in enumerate(masks)})
        path = os.path.join(directory, f"{task}.npz")
        with tf.io.gfile.GFile(path + ".tmp", "wb") as f:
            f.write(buffer.getvalue())
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def load(uri, tasks=None):
    """Read {task: [bool arrays]} from `uri/masks/`; never unpickles anything."""
    directory = os.path.join(uri, MASK_DIR)
    names = tasks or sorted(os.path.splitext(p)[0] for p in tf.io.gfile.listdir(directory)
                            if p.endswith(".npz"))
    result = {}
    for task in names:
        path = os.path.join(directory, f"{task}.npz")
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"no mask for task '{task}' at {path}")
        with tf.io.gfile.GFile(path, "rb") as f:
            with np.load(io.BytesIO(f.read()), allow_pickle=False) as data:
                result[task] = [data[layer_key(i)].astype(bool) for i in range(len(data.files))]
    return result
