"""`modules.lazy_adam.LazyAdam`: Adam on dense gradients, row-local Adam on embedding lookups."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from modules.lazy_adam import LazyAdam

LR, B1, B2, EPS = 0.01, 0.9, 0.999, 1e-7


def _reference(table, lookups, grads):
    """NumPy lazy Adam: per step, sum the gradients of repeated rows, update only those rows."""
    var, m, v = table.copy(), np.zeros_like(table), np.zeros_like(table)
    for t, (rows, values) in enumerate(zip(lookups, grads), start=1):
        unique = np.unique(rows)
        g = np.stack([values[rows == r].sum(axis=0) for r in unique])
        m[unique] = B1 * m[unique] + (1 - B1) * g
        v[unique] = B2 * v[unique] + (1 - B2) * g ** 2
        alpha = LR * np.sqrt(1 - B2 ** t) / (1 - B1 ** t)
        var[unique] -= alpha * m[unique] / (np.sqrt(v[unique]) + EPS)
    return var, m


def test_embedding_rows_outside_the_batch_do_not_move_and_looked_up_rows_follow_adam():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(50, 4)).astype(np.float32)
    variable = tf.Variable(table)
    optimizer = LazyAdam(LR, beta_1=B1, beta_2=B2, epsilon=EPS)
    lookups = [np.array([3, 7, 3, 9]), np.array([7, 12]), np.array([40, 3])]
    grads = [rng.normal(size=(len(rows), 4)).astype(np.float32) for rows in lookups]
    for rows, values in zip(lookups, grads):
        with tf.GradientTape() as tape:
            looked_up = tf.nn.embedding_lookup(variable, rows)
            loss = tf.reduce_sum(looked_up * values)          # d loss / d looked_up = values
        (gradient,) = tape.gradient(loss, [variable])
        assert isinstance(gradient, tf.IndexedSlices)
        optimizer.apply_gradients([(gradient, variable)])
    expected, expected_m = _reference(table, lookups, grads)
    np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(optimizer.variables[1].numpy(), expected_m, rtol=1e-5, atol=1e-7)
    untouched = sorted(set(range(50)) - {3, 7, 9, 12, 40})
    np.testing.assert_array_equal(variable.numpy()[untouched], table[untouched])
    # Row 9 was looked up at step 1 only: Keras' Adam would keep moving it at steps 2 and 3.
    dense = tf.Variable(table)
    keras_adam = keras.optimizers.Adam(LR, beta_1=B1, beta_2=B2, epsilon=EPS)
    for rows, values in zip(lookups, grads):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.nn.embedding_lookup(dense, rows) * values)
        keras_adam.apply_gradients(zip(tape.gradient(loss, [dense]), [dense]))
    assert not np.allclose(dense.numpy()[9], variable.numpy()[9])


def test_dense_gradients_get_keras_adam_unchanged():
    rng = np.random.default_rng(1)
    start = rng.normal(size=(6, 3)).astype(np.float32)
    lazy, plain = tf.Variable(start), tf.Variable(start)
    lazy_opt, plain_opt = LazyAdam(LR), keras.optimizers.Adam(LR)
    for _ in range(3):
        gradient = tf.constant(rng.normal(size=(6, 3)).astype(np.float32))
        lazy_opt.apply_gradients([(gradient, lazy)])
        plain_opt.apply_gradients([(gradient, plain)])
    np.testing.assert_array_equal(lazy.numpy(), plain.numpy())


def test_amsgrad_is_refused():
    with pytest.raises(ValueError, match="amsgrad"):
        LazyAdam(LR, amsgrad=True)
