"""Adam with lazy sparse updates for embedding tables (TF1's `LazyAdamOptimizer`)."""
import tensorflow as tf
import tf_keras as keras


class LazyAdam(keras.optimizers.Adam):
    """Adam whose sparse (embedding) updates touch only the rows the batch looked up.

    Keras' Adam decays the moments of every row of an embedding table on every step: a step costs
    O(vocabulary size), and rows absent from the batch keep moving on stale momentum. Here a
    sparse gradient updates m, v and the variable at its own rows only, the usual choice for
    recommender embeddings; dense gradients (the MLP, heads, biases) get Keras' Adam unchanged.
    """

    def __init__(self, learning_rate, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if self.amsgrad:
            raise ValueError("LazyAdam does not support amsgrad")

    def update_step(self, gradient, variable):
        """One Adam update; for `tf.IndexedSlices` (deduplicated by Keras) only their rows."""
        if not isinstance(gradient, tf.IndexedSlices):
            super().update_step(gradient, variable)
            return
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = (tf.cast(self.learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, step))
                 / (1 - tf.pow(beta_1, step)))
        epsilon = self.epsilon * tf.sqrt(1 - tf.pow(beta_2, step)) if getattr(
            self, "adaptive_epsilon", False) else self.epsilon
        index = self._index_dict[self._var_key(variable)]
        m, v = self._momentums[index], self._velocities[index]
        rows, values = gradient.indices, gradient.values
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + epsilon), rows))
