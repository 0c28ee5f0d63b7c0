"""Reading transformed examples for the custom trainers."""
import os

import numpy as np
import tensorflow as tf


def split_files(examples_uri, split):
    """The gzip TFRecord files of one split of an Examples artifact."""
    files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    if not files:
        raise FileNotFoundError(f"no files for split '{split}' under {examples_uri}")
    return files


def read_arrays(files, feature_spec, batch_size=8192):
    """Parse every example of `files` into a dict of numpy arrays (file order kept)."""
    dataset = (tf.data.TFRecordDataset(files, compression_type="GZIP")
               .batch(batch_size)
               .map(lambda x: tf.io.parse_example(x, feature_spec)))
    parts = {name: [] for name in feature_spec}
    for batch in dataset:
        for name, value in batch.items():
            parts[name].append(value.numpy())
    arrays = {name: np.concatenate(values) for name, values in parts.items() if values}
    if not arrays:
        raise ValueError(f"no examples in {files}")
    return arrays


class InMemoryExamples:
    """Parsed transformed examples held in memory, served as (optionally shuffled) batches."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.num_rows = len(next(iter(arrays.values())))
        self._tensors = {name: tf.constant(value) for name, value in arrays.items()}

    @classmethod
    def from_files(cls, files, feature_spec):
        """Read and parse `files` (see `read_arrays`)."""
        return cls(read_arrays(files, feature_spec))

    def batches(self, batch_size, seed=None):
        """tf.data batches in file order, or in a permutation seeded by `seed`."""
        order = (np.random.default_rng(seed).permutation(self.num_rows) if seed is not None
                 else np.arange(self.num_rows))
        tensors = self._tensors
        return (tf.data.Dataset.from_tensor_slices(order)
                .batch(batch_size)
                .map(lambda idx: {name: tf.gather(t, idx) for name, t in tensors.items()},
                     num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE))
