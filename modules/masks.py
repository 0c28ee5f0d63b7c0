"""Task masks as plain arrays: one `.npz` per task, read with `allow_pickle=False`, and their
provenance as JSON (`modules/ticket_reuse.py`)."""
import io
import json
import os

import numpy as np
import tensorflow as tf

MASK_DIR = "masks"
PROVENANCE_FILE = "ticket.json"     # beside the masks: where and on which span they were searched


def layer_key(index):
    """Array name of the mask of prunable layer `index`."""
    return f"mlp_{index}"


def _write(path, data):
    """Write bytes to `path` aside, then rename into place."""
    with tf.io.gfile.GFile(path + ".tmp", "wb") as f:
        f.write(data)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def save(uri, task_masks, provenance=None):
    """Write {task: [bool arrays]} under `uri/masks/<task>.npz`, and `provenance` (a JSON-able
    dict), if given, to `uri/masks/ticket.json`."""
    directory = os.path.join(uri, MASK_DIR)
    tf.io.gfile.makedirs(directory)
    for task, masks in task_masks.items():
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{layer_key(i): np.asarray(m, dtype=bool)
                                       for i, m in enumerate(masks)})
        _write(os.path.join(directory, f"{task}.npz"), buffer.getvalue())
    if provenance is not None:
        _write(os.path.join(directory, PROVENANCE_FILE),
               json.dumps(provenance, indent=2, sort_keys=True).encode())


def load_provenance(uri):
    """The provenance saved with the masks under `uri`, or None if there is none."""
    path = os.path.join(uri, MASK_DIR, PROVENANCE_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


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
