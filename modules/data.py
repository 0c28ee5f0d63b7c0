"""Streaming the transformed examples for the custom trainers (tf.data over gzip TFRecord shards).

One reader for every split and size: shards are read in parallel (a deterministic interleave),
records are shuffled in a seeded buffer, batched, parsed per batch and prefetched. An epoch is one
pass over the files; its order depends only on (seed, epoch) and the rows. A split that fits the
shuffle buffer (`input.shuffle_buffer` rows) is shuffled as a whole, from its rows sorted by a
fingerprint of their parsed values, so its order does not depend on how Beam happened to write
the rows to files (ExampleGen and Transform write them in an order of their own, which changes
with the Transform graph); a larger split is shuffled within the buffer's window, in file order.
With `input.cache` the serialized records are kept in memory after the first pass (small data),
the same pipeline otherwise. Nothing here holds a split in memory unless the buffer or that
option says so.
"""
import os

import numpy as np
import tensorflow as tf


def split_files(examples_uri, split):
    """The gzip TFRecord files of one split of an Examples artifact."""
    files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    if not files:
        raise FileNotFoundError(f"no files for split '{split}' under {examples_uri}")
    return files


def epoch_seed(seed, epoch):
    """The shuffle seed of one epoch: every (seed, epoch) pair gets its own order."""
    return int(seed) * 1000 + int(epoch)


class Examples:
    """A split of transformed examples, streamed from its files as parsed batches."""

    def __init__(self, files, feature_spec, input_config):
        if not files:
            raise ValueError("Examples needs at least one file")
        self.files = list(files)
        self.feature_spec = dict(feature_spec)
        self.config = input_config
        self._num_rows = None
        records = self._records(list(self.files))
        self._cached = records.cache() if input_config.cache else None

    @property
    def num_rows(self):
        """Rows in the split (counted by one pass over the files, on first use)."""
        if self._num_rows is None:
            source = self._cached if self._cached is not None else self._records(self.files)
            self._num_rows = int(source.batch(8192).reduce(
                np.int64(0), lambda n, records: n + tf.shape(records, out_type=tf.int64)[0]))
            if self._num_rows == 0:
                raise ValueError(f"no examples in {self.files}")
        return self._num_rows

    def batches(self, batch_size, seed=None, epoch=0):
        """One pass as a tf.data.Dataset of parsed batches (dicts of dense tensors).

        `seed=None`: file order, record order (evaluation). Otherwise shuffled with
        `epoch_seed(seed, epoch)`: a split of at most `shuffle_buffer` rows as a whole from its
        rows in content order (`_by_content`); a larger one by shard order (uncached) and a
        `shuffle_buffer` window of records.
        """
        spec = self.feature_spec
        if seed is not None and self.num_rows <= self.config.shuffle_buffer:
            source = self._cached if self._cached is not None else self._records(self.files)
            rows = (source.batch(self.num_rows)
                    .map(lambda serialized: _by_content(tf.io.parse_example(serialized, spec)))
                    .unbatch()
                    .shuffle(self.num_rows, seed=epoch_seed(seed, epoch),
                             reshuffle_each_iteration=False))
            return rows.batch(batch_size).prefetch(tf.data.AUTOTUNE)
        if seed is None:
            records = self._cached if self._cached is not None else self._records(self.files)
        else:
            order = epoch_seed(seed, epoch)
            if self._cached is not None:
                records = self._cached
            else:
                shuffled = np.random.default_rng(order).permutation(len(self.files))
                records = self._records([self.files[i] for i in shuffled])
            records = records.shuffle(self.config.shuffle_buffer, seed=order,
                                      reshuffle_each_iteration=False)
        return (records.batch(batch_size)
                .map(lambda serialized: tf.io.parse_example(serialized, spec),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .prefetch(tf.data.AUTOTUNE))

    def read_arrays(self, batch_size=8192):
        """Every example parsed into a dict of numpy arrays, in file order (tests, benchmarks and
        baselines on small data only: this holds the whole split)."""
        parts = {name: [] for name in self.feature_spec}
        for batch in self.batches(batch_size):
            for name, value in batch.items():
                parts[name].append(value.numpy())
        return {name: np.concatenate(values) for name, values in parts.items()}

    def _records(self, files):
        """Serialized records of `files`, read `interleave_files` at a time, in a fixed order."""
        buffer = self.config.read_buffer_mb << 20
        dataset = tf.data.Dataset.from_tensor_slices(files)
        return dataset.interleave(
            lambda path: tf.data.TFRecordDataset(path, compression_type="GZIP",
                                                 buffer_size=buffer),
            cycle_length=min(self.config.interleave_files, len(files)), block_length=16,
            num_parallel_calls=min(self.config.interleave_files, len(files)),
            deterministic=True)


def _by_content(batch):
    """A parsed batch's rows sorted by a fingerprint of their values (every feature, in name
    order): one order for the same rows, whatever order they were read in."""
    rows = tf.shape(next(iter(batch.values())))[0]
    parts = [tf.fingerprint(tf.reshape(batch[name], [rows, -1])) for name in sorted(batch)]
    key = tf.bitcast(tf.fingerprint(tf.concat(parts, axis=1)), tf.int64)
    order = tf.argsort(key, stable=True)
    return {name: tf.gather(value, order) for name, value in batch.items()}


def write_examples(arrays, path):
    """Write a dict of numpy arrays (as `Examples.read_arrays` returns) as one gzip TFRecord file
    of tf.Examples (test and benchmark data)."""
    rows = len(next(iter(arrays.values())))
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for i in range(rows):
            feature = {}
            for name, values in arrays.items():
                value = np.ravel(values[i])
                if np.issubdtype(value.dtype, np.integer):
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=value))
                else:
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=value))
            writer.write(tf.train.Example(
                features=tf.train.Features(feature=feature)).SerializeToString())
    return path


def feature_spec_of(arrays):
    """The dense parsing spec of arrays written by `write_examples`."""
    return {name: tf.io.FixedLenFeature(
        list(np.shape(values)[1:]),
        tf.int64 if np.issubdtype(np.asarray(values).dtype, np.integer) else tf.float32)
        for name, values in arrays.items()}
