"""The LT4REC network (tf_keras): embeddings -> DLRM dot interactions -> maskable MLP -> heads.

- One embedding table per vocabulary group (`features.vocabulary_groups()`); multi-valued features
  are mean-pooled over their non-padding ids (an empty list pools to zeros).
- Interaction: the full F x F matrix of pairwise dot products of the F field embeddings, flattened
  (as in the original LT4REC), concatenated with the flattened embeddings.
- MLP with ReLU whose kernels are the prunable set: `call(..., masks=[m0, m1, ...])` multiplies each
  kernel by its mask, so a masked connection is exactly zero in the forward pass.
- One linear logit head per task.
"""
import tensorflow as tf
import tf_keras as keras

from modules import features
from modules.preprocessing import PAD_ID

FIELDS = features.SINGLE_VALUED + features.MULTI_VALUED


def input_width(embedding_dim, fields=len(FIELDS)):
    """Width of the MLP input: flattened embeddings plus the full interaction matrix."""
    return fields * embedding_dim + fields * fields


class LT4RecNetwork(keras.Model):
    """Shared dense base network with one logit head per task."""

    def __init__(self, vocab_sizes, tasks, embedding_dim=16, hidden_units=(512, 256, 128),
                 seed=0, **kwargs):
        super().__init__(**kwargs)
        self.tasks = list(tasks)
        self.embedding_dim = embedding_dim
        self.tables = {
            group: keras.layers.Embedding(
                size, embedding_dim, name=f"embedding_{group}",
                embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seed + i))
            for i, (group, size) in enumerate(sorted(vocab_sizes.items()))}
        widths = [input_width(embedding_dim)] + list(hidden_units)
        self.kernels, self.biases = [], []
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            self.kernels.append(self.add_weight(
                name=f"mlp_{i}/kernel", shape=(fan_in, fan_out),
                initializer=keras.initializers.GlorotNormal(seed=seed + 100 + i)))
            self.biases.append(self.add_weight(
                name=f"mlp_{i}/bias", shape=(fan_out,), initializer="zeros"))
        self.heads = {
            task: keras.layers.Dense(1, name=f"head_{task}",
                                     kernel_initializer=keras.initializers.GlorotNormal(
                                         seed=seed + 200 + i))
            for i, task in enumerate(self.tasks)}
        for task, head in self.heads.items():
            head.build((None, widths[-1]))
        for table in self.tables.values():
            table.build((None,))

    def prunable_weights(self):
        """The MLP kernels, in layer order: the set that masks apply to."""
        return list(self.kernels)

    def task_variables(self, task):
        """Variables a step of `task` may change: shared base plus the task's own head."""
        shared = [t.embeddings for t in self.tables.values()] + self.kernels + self.biases
        return shared + self.heads[task].trainable_weights

    def embed(self, inputs):
        """[batch, fields, dim] field embeddings of transformed id features."""
        columns = []
        for name in FIELDS:
            table = self.tables[features.group_of(name)]
            ids = tf.cast(inputs[name], tf.int64)
            if name in features.MULTI_VALUED:
                present = tf.cast(ids != PAD_ID, tf.float32)[..., None]
                summed = tf.reduce_sum(table(tf.maximum(ids, 0)) * present, axis=1)
                columns.append(summed / tf.maximum(tf.reduce_sum(present, axis=1), 1.0))
            else:
                columns.append(table(tf.reshape(ids, [-1])))
        return tf.stack(columns, axis=1)

    def effective_kernels(self, masks=None):
        """The MLP kernels as the forward pass sees them: kernel * mask when masks are given."""
        if masks is None:
            return list(self.kernels)
        return [kernel * mask for kernel, mask in zip(self.kernels, masks)]

    def hidden(self, inputs, kernels):
        """Last hidden layer, computed with the given (effective) MLP `kernels`."""
        emb = self.embed(inputs)
        interactions = tf.matmul(emb, emb, transpose_b=True)
        x = tf.concat([tf.reshape(emb, [tf.shape(emb)[0], -1]),
                       tf.reshape(interactions, [tf.shape(emb)[0], -1])], axis=1)
        for kernel, bias in zip(kernels, self.biases):
            x = tf.nn.relu(tf.matmul(x, kernel) + bias)
        return x

    def logit(self, inputs, task, kernels):
        """Logit [batch] of `task` computed with the given effective MLP `kernels`."""
        return tf.squeeze(self.heads[task](self.hidden(inputs, kernels)), axis=1)

    def call(self, inputs, task=None, masks=None):
        """Logit [batch] of one task (through that task's masks)."""
        return self.logit(inputs, task, self.effective_kernels(masks))
