"""Masked training of an LT4RecNetwork: the loop shared by ticket search and MTL training.

Each task has its own masks (one per prunable kernel) and its own Adam optimizer (lazy on the
embedding tables: a step updates only the rows it looked up, so its cost does not grow with the
vocabularies). A step of a task
runs the network through that task's masks, so the gradient of a masked-out connection is exactly
zero; with per-task optimizer state that has only ever seen zeros there, Adam's update is exactly
zero too: no task moves a connection outside its own mask (no momentum leaks between tasks).
"""
import numpy as np
import tensorflow as tf

from modules import tasks as task_lib
from modules.lazy_adam import LazyAdam


class MaskedTrainer:
    """Trains one network through per-task masks under a tf.distribute strategy."""

    def __init__(self, network, strategy, model_config, loss_weights=None):
        self.network = network
        self.strategy = strategy
        self.model_config = model_config
        self.loss_weights = dict(loss_weights or {})
        self.masks = {}
        self.optimizers = {}
        self._steps = {}
        self._predict = {}
        self.global_step = 0

    def set_masks(self, task, masks):
        """Use boolean numpy `masks` (one per prunable kernel) for `task`'s steps and predictions."""
        values = [np.asarray(m, dtype=np.float32) for m in masks]
        if task in self.masks:
            for var, value in zip(self.masks[task], values):
                var.assign(value)
            return
        with self.strategy.scope():
            self.masks[task] = [tf.Variable(v, trainable=False, name=f"mask_{task}_{i}")
                                for i, v in enumerate(values)]

    def reset_optimizers(self):
        """Zero every task's Adam state (iterations and moments): the optimizer state at θ0."""
        for task in self.masks:
            if task not in self.optimizers:
                with self.strategy.scope():
                    optimizer = LazyAdam(self.model_config.learning_rate, jit_compile=False)
                    optimizer.build(self.network.task_variables(task))
                self.optimizers[task] = optimizer
            for var in self.optimizers[task].variables:
                var.assign(tf.zeros_like(var))

    def train(self, examples, schedule, epochs, seed, on_step=None):
        """Train for `epochs` over `examples`; `schedule(batch_index)` lists the tasks to step.

        Batches are shuffled by a permutation seeded from (`seed`, epoch). `on_step(step, losses)`
        is called after each batch with {task: loss}.
        """
        batch_index = 0
        for epoch in range(epochs):
            dataset = self.strategy.experimental_distribute_dataset(
                examples.batches(self.model_config.batch_size, seed=seed * 1000 + epoch))
            for batch in dataset:
                losses = {task: float(self._step_fn(task)(batch)) for task in schedule(batch_index)}
                batch_index += 1
                self.global_step += 1
                if on_step:
                    on_step(self.global_step, losses)
        return batch_index

    def predict(self, examples, task):
        """Probabilities sigmoid(logit) of `task` for every example, in order."""
        if task not in self._predict:
            masks = self.masks.get(task)
            self._predict[task] = tf.function(
                lambda batch: tf.sigmoid(self.network(batch, task=task, masks=masks)))
        scores = [self._predict[task](batch).numpy()
                  for batch in examples.batches(self.model_config.eval_batch_size)]
        return np.concatenate(scores)

    def evaluate(self, examples, tasks):
        """{task: AUC} on `examples` (see `tasks.auc`)."""
        return {task: task_lib.auc(task, examples.arrays, self.predict(examples, task))
                for task in tasks}

    def _step_fn(self, task):
        if task not in self._steps:
            self._steps[task] = self._make_step(task)
        return self._steps[task]

    def _make_step(self, task):
        network, strategy, config = self.network, self.strategy, self.model_config
        masks, optimizer = self.masks[task], self.optimizers[task]
        weight = float(self.loss_weights.get(task, 1.0))
        variables = network.task_variables(task)

        def replica_step(batch):
            with tf.GradientTape() as tape:
                logits = network(batch, task=task, masks=masks)
                per_example = task_lib.per_example_loss(task, batch, logits, config)
                loss = weight * tf.nn.compute_average_loss(
                    per_example, global_batch_size=config.batch_size)
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables))
            return loss

        @tf.function(reduce_retracing=True)
        def step(batch):
            per_replica = strategy.run(replica_step, args=(batch,))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

        return step
