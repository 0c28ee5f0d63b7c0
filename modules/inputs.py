"""What both custom trainers load: transformed splits, vocabulary sizes, the strategy, seeds."""
import dataclasses

from absl import logging

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from modules import data, distribution, memory, model, spec as spec_lib


@dataclasses.dataclass
class TrainingInputs:
    """Everything a trainer needs besides its own artifacts.

    `validation` is what every choice reads (ticket rounds, early stopping); `evaluation` is read
    only for the numbers reported.
    """
    train: data.Examples
    validation: data.Examples
    evaluation: data.Examples
    vocab_sizes: dict
    strategy: tf.distribute.Strategy
    table_memory: dict = dataclasses.field(default_factory=dict)   # see `memory.table_memory`


def load(examples_uri, transform_graph_uri, config, devices=None):
    """Seed everything from config, size the embedding tables (refusing tables over the memory
    budget before anything trains) and open the three splits as streams."""
    keras.utils.set_random_seed(config.model.seed)
    tf.config.experimental.enable_op_determinism()
    tft_output = tft.TFTransformOutput(transform_graph_uri)
    sizes = vocab_sizes(tft_output, config)
    tables = memory.check_budget(sizes, config, config.spec.task_names(), log=logging.info)
    spec = tft_output.transformed_feature_spec()
    splits = {split: data.Examples(data.split_files(examples_uri, split), spec, config.input)
              for split in ("train", "validation", "eval")}
    return TrainingInputs(
        train=splits["train"], validation=splits["validation"], evaluation=splits["eval"],
        vocab_sizes=sizes, strategy=distribution.make_strategy(devices), table_memory=tables)


def vocab_sizes(tft_output, config):
    """{table: rows}: each vocabulary group's vocabulary size + OOV buckets, each bucketised
    numeric feature's bucket count."""
    spec = config.spec
    sizes = {group: tft_output.vocabulary_size_by_name(spec_lib.vocabulary_name(group))
             + spec.vocab_settings(group, config.vocab)[2]
             for group in spec.vocabulary_groups()}
    return {**sizes, **spec.bucket_tables()}


def build_network(inputs, config, tasks):
    """The seeded network (`mtl.architecture`) for `tasks`, created under the inputs' strategy."""
    with inputs.strategy.scope():
        return network_for(inputs.vocab_sizes, config, tasks)


def network_for(vocab_sizes, config, tasks):
    """The seeded network of `config.model` and `mtl.architecture` for these embedding table
    sizes and tasks."""
    return model.LT4RecNetwork(
        vocab_sizes, tasks, config.spec, embedding_dim=config.model.embedding_dim,
        hidden_units=config.model.hidden_units, dropout=config.model.dropout,
        linear_term=config.model.linear_term, seed=config.model.seed,
        architecture=config.mtl.architecture, experts=config.mtl.experts)
