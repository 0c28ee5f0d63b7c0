"""Masked training of an LT4RecNetwork: the loop shared by ticket search and MTL training.

Each task has its own masks (one per prunable kernel) and its own Adam optimizer (lazy on the
embedding tables: a step updates only the rows it looked up, so its cost does not grow with the
vocabularies). A step of a task runs the network through that task's masks, so the gradient of a
masked-out connection is exactly zero; with per-task optimizer state that has only ever seen zeros
there, Adam's update is exactly zero too: no task moves a connection outside its own mask (no
momentum leaks between tasks). A task's loss weight scales its learning rate (Adam is invariant to
a constant scale of the gradient).

Losses stay on the device: each step adds its loss to a per-task sum, read (and logged) only
every `model.log_every_steps` steps, so a step never waits for the host. Evaluation streams
(`streaming_metrics`): AUC over any number of rows without holding them.

`fit` trains with early stopping on the validation examples: training never reads eval data.
"""
import dataclasses
import gc
import itertools
import math
import threading
import time
from typing import Dict, List

import numpy as np
import tensorflow as tf

from modules import progress, tasks as task_lib
from modules.lazy_adam import LazyAdam
from modules.streaming_metrics import ScoreHistogram


def _release(references):
    """Drop `references` (a finished pass's tf.data iterator) on a background thread. Deleting
    the iterator of a multi-million-row pass blocked the training loop for 13-30 s in a fit
    (0.07 s for the same iterator read alone; benchmarks/README, "Scale"); off the loop, the
    next pass or the end of training does not wait for it."""
    threading.Thread(target=references.clear, name="release-iterator", daemon=True).start()


def snapshot(network):
    """Copy of every network variable's value."""
    return [v.numpy().copy() for v in network.variables]


def restore(network, values):
    """Assign a `snapshot` back to the network."""
    for var, value in zip(network.variables, values):
        var.assign(value)


class HeldWeights:
    """One copy of every network variable, held in TensorFlow variables beside the network:
    `hold` overwrites the copy in place and `put_back` assigns it to the network, so keeping a
    best check costs one copy of the parameters and no temporary host copies (`snapshot` makes
    numpy copies, for tests and benchmarks)."""

    def __init__(self, network):
        self.network = network
        self.copies = None

    def hold(self):
        """Copy the network's current values into the held copy."""
        if self.copies is None:
            self.copies = [tf.Variable(v.read_value(), trainable=False) for v in
                           self.network.variables]
        else:
            for copy, var in zip(self.copies, self.network.variables):
                copy.assign(var.read_value())

    def put_back(self):
        """Assign the held copy to the network."""
        for var, copy in zip(self.network.variables, self.copies):
            var.assign(copy.read_value())


def improved(new, best, new_error, best_error, min_delta):
    """The one early-stopping rule, for stopping and for keeping: `new` beats `best` only by more
    than `min_delta` and by more than the two streamed AUCs' error bounds together."""
    return new > best + max(min_delta, (new_error or 0.0) + (best_error or 0.0))


@dataclasses.dataclass
class FitReport:
    """What early stopping saw and kept in one `MaskedTrainer.fit`."""
    checks: List[dict]                 # {"step", "epoch", "validation_auc": {task: auc}} each
    best_check: int                    # index of the check the shared weights come from
    validation_auc: Dict[str, float]   # per task, of the weights kept
    epochs_trained: Dict[str, float]   # passes over the train data each task stepped through
    stopped: Dict[str, bool]           # whether the task ran out of patience
    # Per task, the check where its validation AUC last improved (while it was stepping).
    task_best_check: Dict[str, int] = dataclasses.field(default_factory=dict)
    # "best_check" (the shared weights of `best_check`, everything included) or "per_task" (that,
    # with each task's own parameters from its `task_best_check`), whichever validation preferred.
    kept: str = "best_check"
    # Where the fit's wall time went (`PhaseClock`): waiting for input (a pass's first batch
    # fills the shuffle buffer), first steps (tracing), the other steps, validation checks.
    seconds: Dict[str, float] = dataclasses.field(default_factory=dict)

    def to_json(self):
        """JSON-able record."""
        return dataclasses.asdict(self)


class PhaseClock:
    """Wall seconds per phase of a fit. Steps run synchronously (TF's default eager mode), so a
    step's time is its compute; the reader's threads run beside it and count only while the
    loop waits for them."""

    def __init__(self):
        self.seconds = {"input_wait": 0.0, "first_steps": 0.0, "steps": 0.0, "checks": 0.0}
        self._traced = set()

    def timed(self, phase, fn, *args):
        """`fn(*args)`, its wall time added to `phase`."""
        start = time.perf_counter()
        result = fn(*args)
        self.seconds[phase] += time.perf_counter() - start
        return result

    def step_phase(self, tasks):
        """"first_steps" when one of `tasks` steps for the first time (its step function
        traces), else "steps"."""
        new = set(tasks) - self._traced
        self._traced |= new
        return "first_steps" if new else "steps"

    def report(self):
        """{phase: seconds}, rounded."""
        return {phase: round(value, 3) for phase, value in self.seconds.items()}


class OwnParameters:
    """One task's own parameters: head, linear term and its mask-only MLP connections."""

    def __init__(self, network, task, only_masks):
        self.variables = network.own_variables(task)
        self.kernels, self.only = network.prunable_weights(), only_masks

    def values(self):
        """Copies of the current values (whole kernels; `assign` puts back only the owned
        connections)."""
        return [v.numpy().copy() for v in self.variables + self.kernels]

    def assign(self, values):
        """Put `values` (from `values()`) back: the head and linear term whole, the kernels at
        the owned connections only."""
        count = len(self.variables)
        for var, value in zip(self.variables, values[:count]):
            var.assign(value)
        for kernel, only, value in zip(self.kernels, self.only, values[count:]):
            kernel.assign(np.where(only, value, kernel.numpy()))


class MaskedTrainer:
    """Trains one network through per-task masks under a tf.distribute strategy."""

    def __init__(self, network, strategy, config, loss_weights=None, product_losses=()):
        """`config`: the Config (its `model` section and `spec`: the tasks, the products and the
        reference scores, scored and evaluated like their task); `loss_weights`: {task: weight}
        (default 1); `product_losses`: products whose last task steps on the product's loss
        (`mtl.product_losses`)."""
        self.network = network
        self.spec = config.spec
        self.tasks = {t.name: t for t in config.spec.tasks}
        self.products = {p.name: p.tasks for p in config.spec.products}
        self.through_product = {self.products[name][-1]: name for name in product_losses}
        self.references = config.spec.reference_columns()
        self.strategy = strategy
        self.model_config = config.model
        self.loss_weights = dict(loss_weights or {})
        self.masks = {}
        self.optimizers = {}
        self._steps = {}
        self._predict = {}
        self._metrics = {}
        self._loss_sums = {}
        self.served = {}
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
                rate = self.model_config.learning_rate * float(self.loss_weights.get(task, 1.0))
                with self.strategy.scope():
                    optimizer = LazyAdam(rate, jit_compile=False)
                    optimizer.build(self.network.task_variables(task))
                self.optimizers[task] = optimizer
            for var in self.optimizers[task].variables:
                var.assign(tf.zeros_like(var))

    def release_optimizers(self):
        """Drop every task's optimizer and step function, freeing their Adam slots (training is
        over; `reset_optimizers` builds them again)."""
        self.optimizers.clear()
        self._steps.clear()
        gc.collect()                    # traced step functions hold the slots in cycles

    def batches(self, examples, seed, epochs=None):
        """(epoch, distributed batch) over `epochs` passes (None: no end), each pass in the order
        `examples.batches` gives (`seed`, epoch)."""
        for epoch in (range(epochs) if epochs is not None else itertools.count()):
            iterator = iter(self.strategy.experimental_distribute_dataset(
                examples.batches(self.model_config.batch_size, seed=seed, epoch=epoch)))
            for batch in iterator:
                yield epoch, batch
            finished = [iterator]
            del iterator
            _release(finished)

    def step(self, tasks, batch, on_log=None):
        """One step of each task in `tasks` on `batch` (no host sync). Every
        `model.log_every_steps` steps, `on_log(step, {task: mean loss since the last call})`."""
        for task in tasks:
            self._step_fn(task)(batch)
        self.global_step += 1
        if on_log and self.global_step % self.model_config.log_every_steps == 0:
            on_log(self.global_step, self.read_losses())

    def read_losses(self):
        """{task: mean training loss since the last read} (tasks that stepped), then reset."""
        losses = {}
        for task, (total, count) in self._loss_sums.items():
            steps = int(count.numpy())
            if steps:
                losses[task] = float(total.numpy()) / steps
            total.assign(0.0)
            count.assign(0)
        return losses

    def train_steps(self, examples, schedule, steps, seed):
        """Exactly `steps` batches (passes repeat as needed); `schedule(i)` lists the tasks.
        Returns the seconds per phase (`PhaseClock`; no checks)."""
        clock = PhaseClock()
        batches = self.batches(examples, seed)
        for index in range(steps):
            _, batch = clock.timed("input_wait", next, batches)
            tasks = schedule(index)
            clock.timed(clock.step_phase(tasks), self.step, tasks, batch)
        return clock.report()

    def fit(self, train, validation, tasks, schedule, stopping, seed, on_log=None):
        """Train with early stopping on `validation` AUC; returns a FitReport.

        Validation AUC of every task in `tasks` is checked every `stopping.every_steps` batches
        (0: after every pass). One rule (`improved`) decides both stopping and keeping: a check
        improves on a best only by more than `stopping.min_delta` and the AUCs' error bounds. A
        task stops stepping once `stopping.patience` checks in a row did not improve its best;
        training ends when every task stopped or after `stopping.max_epochs` passes. The
        weights kept are those of the check whose mean validation AUC over `tasks` last
        improved (for one task: its best check). With several tasks, each task's own
        parameters (`own_parameters`) are also snapshotted at its own best check; if putting
        them back on top of the kept check improves the mean validation AUC (same rule), that
        combination is kept instead (`FitReport.kept = "per_task"`).
        `schedule(batch_index)` lists the tasks to step on a batch; stopped tasks are skipped.
        `on_log` is passed to `step`.
        """
        tasks = list(tasks)
        per_epoch = max(1, math.ceil(train.num_rows / self.model_config.batch_size))
        every = stopping.every_steps or per_epoch
        active, stale, taken = set(tasks), {t: 0 for t in tasks}, {t: 0 for t in tasks}
        best = {t: {"auc": -math.inf, "error": 0.0, "index": None, "own": None} for t in tasks}
        kept = {"auc": -math.inf, "error": 0.0, "index": 0, "weights": HeldWeights(self.network)}
        own = self.own_parameters(tasks) if len(tasks) > 1 else {}
        checks = []
        index = 0
        clock = PhaseClock()

        def check():
            metrics = self.auc_metrics(validation, tasks)
            checks.append({"step": index, "epoch": round(index / per_epoch, 4),
                           "validation_auc": {t: metrics[t]["auc"] for t in tasks}})
            for task in sorted(active):
                auc, error = metrics[task]["auc"], metrics[task]["auc_max_error"]
                if improved(auc, best[task]["auc"], error, best[task]["error"],
                            stopping.min_delta):
                    best[task].update(auc=auc, error=error, index=len(checks) - 1,
                                      own=own[task].values() if own else None)
                    stale[task] = 0
                else:
                    stale[task] += 1
                    if stale[task] >= stopping.patience:
                        active.discard(task)
            mean = float(np.mean([metrics[t]["auc"] for t in tasks]))
            error = float(np.mean([metrics[t]["auc_max_error"] or 0.0 for t in tasks]))
            if improved(mean, kept["auc"], error, kept["error"], stopping.min_delta):
                kept.update(auc=mean, error=error, index=len(checks) - 1)
                kept["weights"].hold()
            progress.report(f"epoch {index / per_epoch:.1f}: validation AUC " + ", ".join(
                f"{t} {metrics[t]['auc']:.4f}" for t in tasks))

        batches = self.batches(train, seed, stopping.max_epochs)
        while True:
            item = clock.timed("input_wait", next, batches, None)
            if item is None:
                break
            stepping = [t for t in schedule(index) if t in active]
            if stepping:        # a proportional schedule may draw a task that has stopped
                clock.timed(clock.step_phase(stepping), self.step, stepping, item[1], on_log)
            for task in stepping:
                taken[task] += 1
            index += 1
            if index % every == 0:
                clock.timed("checks", check)
                if not active:
                    break
        if not checks or checks[-1]["step"] != index:
            clock.timed("checks", check)
        kept["weights"].put_back()
        report = FitReport(
            checks=checks, best_check=kept["index"],
            validation_auc=dict(checks[kept["index"]]["validation_auc"]),
            epochs_trained={t: round(taken[t] / per_epoch, 4) for t in tasks},
            stopped={t: t not in active for t in tasks},
            task_best_check={t: best[t]["index"] for t in tasks}, seconds=clock.report())
        moved = [t for t in tasks if own and best[t]["index"] != kept["index"]]
        if moved:
            for task in moved:
                own[task].assign(best[task]["own"])
            metrics = self.auc_metrics(validation, tasks)
            mean = float(np.mean([metrics[t]["auc"] for t in tasks]))
            error = float(np.mean([metrics[t]["auc_max_error"] or 0.0 for t in tasks]))
            if improved(mean, kept["auc"], error, kept["error"], stopping.min_delta):
                report.kept = "per_task"
                report.validation_auc = {t: metrics[t]["auc"] for t in tasks}
            else:
                kept["weights"].put_back()
        return report

    def own_parameters(self, tasks):
        """{task: OwnParameters}: what only that task's steps move among `tasks`: its head, its
        linear term and the MLP connections in its mask and in no other task's."""
        masks = {t: [m.numpy() > 0 for m in self.masks[t]] for t in tasks}
        result = {}
        for task in tasks:
            others = [masks[o] for o in tasks if o != task]
            only = [np.logical_and(m, ~np.logical_or.reduce([o[i] for o in others]))
                    for i, m in enumerate(masks[task])]
            result[task] = OwnParameters(self.network, task, only)
        return result

    def serve_from(self, task, network, masks):
        """Score (predict, metrics) `task` with another network through boolean `masks` from
        now on: a task served from its own ticket's weights (`mtl.guard_negative_transfer`)."""
        self.served[task] = (network, [tf.constant(np.asarray(m, np.float32)) for m in masks])
        self._predict, self._metrics = {}, {}

    def predict(self, examples, task):
        """Probabilities sigmoid(logit) of `task` for every example, in order (holds one float per
        row: for tests and benchmarks; training and evaluation use `metrics`)."""
        if task not in self._predict:
            self._predict[task] = tf.function(lambda batch: self.scores(batch, [task])[task])
        scores = [self._predict[task](batch).numpy()
                  for batch in examples.batches(self.model_config.eval_batch_size)]
        return np.concatenate(scores)

    def scores(self, batch, names):
        """{name: [batch] score}: a task's probability (through its masks, by the network that
        serves it), a product of task probabilities, or a reference score (a column of the
        data)."""
        probabilities = {}

        def probability(task):
            if task not in probabilities:
                network, masks = self.served.get(task, (self.network, self.masks.get(task)))
                probabilities[task] = tf.sigmoid(network(batch, task=task, masks=masks))
            return probabilities[task]
        result = {}
        for name in names:
            if name in self.references:
                result[name] = batch[self.references[name][0]]
            elif name in self.products:
                result[name] = task_lib.product([probability(t) for t in self.products[name]])
            else:
                result[name] = probability(name)
        return result

    def metrics(self, examples, names):
        """{name: streaming AUC, its error bound and calibration} of each output in `names` over
        every example, in one pass (see `streaming_metrics.ScoreHistogram.result`)."""
        key = tuple(names)
        if key not in self._metrics:
            histograms = {name: ScoreHistogram() for name in names}

            @tf.function(reduce_retracing=True)
            def update(batch):
                scores = self.scores(batch, names)
                for name, histogram in histograms.items():
                    labels, rows = task_lib.eval_rows(
                        self.spec, self.references[name][1] if name in self.references else name,
                        batch)
                    histogram.update(labels, scores[name], rows)
            self._metrics[key] = (histograms, update)
        histograms, update = self._metrics[key]
        for histogram in histograms.values():
            histogram.reset()
        for batch in examples.batches(self.model_config.eval_batch_size):
            update(batch)
        return {name: histogram.result() for name, histogram in histograms.items()}

    def auc_metrics(self, examples, tasks):
        """{task: {"auc", "auc_max_error"}} on `examples` (streamed; raises
        `tasks.MetricUndefinedError` if a task's eval rows hold a single class)."""
        return {task: {"auc": task_lib.defined_auc(task, result),
                       "auc_max_error": result["auc_max_error"]}
                for task, result in self.metrics(examples, tasks).items()}

    def evaluate(self, examples, tasks):
        """{task: AUC} on `examples` (see `auc_metrics`)."""
        return {task: m["auc"] for task, m in self.auc_metrics(examples, tasks).items()}

    def _step_fn(self, task):
        if task not in self._steps:
            self._steps[task] = self._make_step(task)
        return self._steps[task]

    def _make_step(self, task):
        network, strategy, config = self.network, self.strategy, self.model_config
        spec = self.tasks[task]
        masks, optimizer = self.masks[task], self.optimizers[task]
        variables = network.task_variables(task)
        l2 = config.embedding_l2
        total = tf.Variable(0.0, trainable=False, name=f"loss_sum_{task}")
        count = tf.Variable(0, dtype=tf.int64, trainable=False, name=f"loss_steps_{task}")
        self._loss_sums[task] = (total, count)

        product = self.through_product.get(task)

        def loss_of(batch, logits):
            """(per-example loss, [batch] 0/1 rows it trains on)."""
            if product is None:
                return (task_lib.per_example_loss(spec, batch, logits),
                        task_lib.train_rows(spec, batch))
            others = [tf.stop_gradient(tf.math.log_sigmoid(network.forward(
                batch, other, network.effective_kernels(self.masks[other]))))
                for other in self.products[product][:-1]]
            loss = task_lib.product_loss(self.spec, product, batch,
                                         tf.add_n([tf.math.log_sigmoid(logits)] + others))
            return loss, tf.cast(task_lib.eval_rows(self.spec, product, batch)[1], tf.float32)

        def replica_step(batch):
            with tf.GradientTape() as tape:
                kernels = network.effective_kernels(masks)
                if l2 > 0:
                    logits, penalty = network.forward(batch, task, kernels, training=True,
                                                      with_penalty=True)
                else:
                    logits, penalty = network.forward(batch, task, kernels, training=True), 0.0
                per_example, rows = loss_of(batch, logits)
                per_example += l2 * penalty * rows
                loss = tf.nn.compute_average_loss(per_example,
                                                  global_batch_size=config.batch_size)
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables))
            return loss

        @tf.function(reduce_retracing=True)
        def step(batch):
            per_replica = strategy.run(replica_step, args=(batch,))
            total.assign_add(strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None))
            count.assign_add(1)

        return step
