"""Warm start: the MTL network starts from a pushed model's trained weights.

Every exported model keeps its network's checkpoint in `assets.extra/network/` and Transform's
vocabularies in `assets/`. Warm starting rebuilds that network at its own table sizes, reads the
checkpoint into it, and copies into the new network: every MLP, expert, gate, head and numeric
weight as it is, and the embedding and linear-term rows by vocabulary string: an id in both
vocabularies keeps its trained row, a new id keeps its fresh (seeded) row, and the OOV bucket
rows are copied (the same strings hash to the same buckets). A model whose network does not fit
the config (another architecture, spec, width or bucket count) is refused, naming what differs.
"""
import os

import numpy as np
import tensorflow as tf
from absl import logging

from modules import spec as spec_lib
from modules.errors import ConfigError
from modules.export import NETWORK_CHECKPOINT
from modules.serving_dir import model_at


def newest(source):
    """The model to warm-start from: `source` itself when it is a SavedModel directory, else the
    newest numeric version under it (a serving directory); None when there is none (nothing
    pushed yet) or it holds no network checkpoint (pushed by an older version: warned)."""
    model = model_at(source)
    if model and not tf.io.gfile.exists(f"{model}/{NETWORK_CHECKPOINT}.index"):
        logging.warning("no warm start: %s holds no network checkpoint (%s; pushed before warm "
                        "starts existed), so MTL starts cold", model, NETWORK_CHECKPOINT)
        return None
    return model


def _vocabulary(path):
    with tf.io.gfile.GFile(path, "rb") as f:
        return [line.rstrip(b"\n") for line in f]


def _row_maps(model_dir, tft_output, config):
    """{group: (new rows, old rows)} of the ids (and OOV buckets) in both vocabularies, and the
    old model's table sizes."""
    maps, old_sizes = {}, dict(config.spec.bucket_tables())
    for group in config.spec.vocabulary_groups():
        name = spec_lib.vocabulary_name(group)
        path = os.path.join(model_dir, "assets", name)
        if not tf.io.gfile.exists(path):
            raise ConfigError(f"invalid warm start: {model_dir} has no vocabulary {name} (its "
                              f"spec differs: warm start needs the same vocabulary groups)")
        old = {token: row for row, token in enumerate(_vocabulary(path))}
        new = tft_output.vocabulary_by_name(name)
        oov = config.spec.vocab_settings(group, config.vocab)[2]
        old_sizes[group] = len(old) + oov
        both = [(row, old[token]) for row, token in enumerate(new) if token in old]
        buckets = [(len(new) + b, len(old) + b) for b in range(oov)]
        maps[group] = tuple(np.array([pair[i] for pair in both + buckets], np.int64)
                            for i in (0, 1))
    return maps, old_sizes


def apply(network, model_dir, tft_output, config, build_network):
    """Copy the trained weights of the model at `model_dir` into `network` (see the module
    docstring); `build_network(vocab_sizes)` makes a network of the config at other table
    sizes. Returns {"from", "rows_kept": {group: ids keeping their row}, "rows_new": {group:
    ids starting fresh}}."""
    maps, old_sizes = _row_maps(model_dir, tft_output, config)
    donor = build_network(old_sizes)
    try:
        tf.train.Checkpoint(network=donor).read(
            f"{model_dir}/{NETWORK_CHECKPOINT}").assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        raise ConfigError(f"invalid warm start: the network saved in {model_dir} does not fit "
                          f"this config (architecture, spec, model widths and OOV buckets must "
                          f"match): {str(error).splitlines()[0]}") from None
    if len(donor.variables) != len(network.variables):
        raise ConfigError(f"invalid warm start: the network saved in {model_dir} has "
                          f"{len(donor.variables)} variables, this config's "
                          f"{len(network.variables)}")
    groups = {id(donor.tables[g].embeddings): g for g in donor.tables}
    groups.update({id(table.embeddings): donor.table_of(name)         # linear terms
                   for per_task in donor.linear.values() for name, table in per_task.items()})
    for old, new in zip(donor.variables, network.variables):
        group = groups.get(id(old))
        if group in maps:
            rows = new.numpy()
            rows[maps[group][0]] = old.numpy()[maps[group][1]]
            new.assign(rows)
        elif old.shape == new.shape:
            new.assign(old)
        else:
            raise ConfigError(f"invalid warm start: {new.name} has shape {new.shape} here and "
                              f"{old.shape} in {model_dir}")
    oov = {g: config.spec.vocab_settings(g, config.vocab)[2] for g in maps}
    return {"from": model_dir,
            "rows_kept": {g: int(len(m[0]) - oov[g]) for g, m in maps.items()},
            "rows_new": {g: int(network.tables[g].input_dim - len(m[0])) for g, m in maps.items()}}
