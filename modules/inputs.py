"""What both custom trainers load: transformed splits, vocabulary sizes, the strategy, seeds."""
import dataclasses

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from modules import data, distribution, features, model


@dataclasses.dataclass
class TrainingInputs:
    """Everything a trainer needs besides its own artifacts."""
    train: data.InMemoryExamples
    evaluation: data.InMemoryExamples
    vocab_sizes: dict
    strategy: tf.distribute.Strategy


def load(examples_uri, transform_graph_uri, config, devices=None):
    """Seed everything from config, read the train/eval splits and the vocabulary sizes."""
    keras.utils.set_random_seed(config.model.seed)
    tf.config.experimental.enable_op_determinism()
    tft_output = tft.TFTransformOutput(transform_graph_uri)
    spec = tft_output.transformed_feature_spec()
    return TrainingInputs(
        train=data.InMemoryExamples.from_files(data.split_files(examples_uri, "train"), spec),
        evaluation=data.InMemoryExamples.from_files(data.split_files(examples_uri, "eval"), spec),
        vocab_sizes=vocab_sizes(tft_output, config),
        strategy=distribution.make_strategy(devices))


def vocab_sizes(tft_output, config):
    """{group: vocabulary size + OOV buckets}: the embedding table sizes."""
    return {group: tft_output.vocabulary_size_by_name(features.vocabulary_name(group))
            + config.vocab.for_group(group)[2]
            for group in features.vocabulary_groups()}


def build_network(inputs, config, tasks):
    """The seeded LT4RecNetwork for `tasks`, created under the inputs' strategy."""
    with inputs.strategy.scope():
        return model.LT4RecNetwork(
            inputs.vocab_sizes, tasks, embedding_dim=config.model.embedding_dim,
            hidden_units=config.model.hidden_units, seed=config.model.seed)
