"""Export the trained network as one SavedModel for TF Serving and TFMA.

Signatures:
- `serving_default(examples: string[batch])` -> one probability per task of the spec and per
  product (for LT4REC: `ctr`, `cvr`, `ctcvr` = ctr * cvr): parses raw serialized tf.Examples,
  applies the Transform graph, and runs each task through its own mask.
- `transform_features(examples)` -> the transformed labels and row masks, for TFMA.
- `evaluation(examples)` -> the serving outputs plus each reference score of the spec (e.g.
  `pctr_reference`, the production score parsed from the example's `pctr`), so TFMA reports the
  production model's AUC beside ours.

Each task's mask is also published as plain arrays in `assets.extra/masks/<task>.npz` (read with
`masks.load(<model>/assets.extra)`) with their provenance, so every pushed version carries the
tickets it was trained through (`modules/ticket_reuse.py` may reuse them), and the MTL network's checkpoint in `assets.extra/network/` (`modules/warm_start.py`
starts the next run from it); TF Serving ignores `assets.extra` apart from warm-up requests.

Masks are baked in: each task path has its own MLP kernels holding kernel * mask, so pruned
connections are exact zeros in the exported weights (a kernel a task reads whole is served
once, not copied). A task served from its own ticket's weights
(negative transfer, `mtl.guard_negative_transfer`) runs through that second network.
"""
import types

import numpy as np
import tensorflow as tf

from modules import masks as masks_lib
from modules import tasks
from modules.serving_dir import EXTRA_DIR

NETWORK_CHECKPOINT = f"{EXTRA_DIR}/network/checkpoint"   # the MTL network, for warm starts


class ServingModule(tf.Module):
    """The exported object: network, per-task masked kernels and the Transform layer."""

    def __init__(self, network, task_masks, tft_output, spec, served=None):
        """`spec`: the config's spec (tasks, products, reference scores for the evaluation
        signature); `served`: {task: (network, masks)} for tasks another network serves."""
        super().__init__()
        self._references = {name: column for name, (column, _) in
                            spec.reference_columns().items()}
        self._tasks = spec.task_names()
        self._products = {p.name: list(p.tasks) for p in spec.products}
        self._labels = spec.transformed_labels() + list(self._references.values())
        served = served or {}
        networks = {task: served[task][0] if task in served else network
                    for task in self._tasks}
        # Keep the Keras models out of the object graph (their own Keras SavedModel serialisation
        # is not wanted); track their variables directly instead.
        self._keras = types.SimpleNamespace(networks=networks)
        self.network_variables = list(network.variables)
        self.served_variables = [v for task in sorted(served) for v in served[task][0].variables]
        self.tft_layer = tft_output.transform_features_layer()
        self.task_kernels = {
            task: _baked(networks[task], task,
                         served[task][1] if task in served else task_masks[task])
            for task in self._tasks}
        self._raw_spec = {name: spec for name, spec in tft_output.raw_feature_spec().items()}

    def _transform(self, examples):
        raw = tf.io.parse_example(examples, self._raw_spec)
        return self.tft_layer(raw)

    def _predict(self, transformed):
        networks = self._keras.networks
        outputs = {task: tf.sigmoid(networks[task].logit(transformed, task,
                                                         self.task_kernels[task]))
                   for task in self._tasks}
        for name, factors in self._products.items():
            outputs[name] = tasks.product([outputs[t] for t in factors])
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        """Serialized raw tf.Examples -> each task's and product's probability."""
        return self._predict(self._transform(examples))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def evaluate(self, examples):
        """Serving outputs plus the reference scores of the data (e.g. `pctr_reference`)."""
        transformed = self._transform(examples)
        outputs = self._predict(transformed)
        outputs.update({name: transformed[column] for name, column in self._references.items()})
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(self, examples):
        """Serialized raw tf.Examples -> transformed features (for evaluation)."""
        transformed = self._transform(examples)
        return {name: transformed[name] for name in transformed if name in self._labels}


def _baked(network, task, masks):
    """`task`'s serving kernels: kernel * mask where the mask prunes part of a kernel the task
    reads, the network's own kernel where it keeps all of it or the task never reads it (no
    copy: mmoe, ple and shared_bottom serve their kernels once)."""
    kernels = []
    for i, (kernel, mask, read) in enumerate(zip(network.prunable_weights(), masks,
                                                  network.reads(task))):
        mask = np.asarray(mask, bool)
        kernels.append(tf.Variable(kernel * mask.astype(np.float32), trainable=False,
                                   name=f"{task}_mlp_{i}")
                       if read and not mask.all() else kernel)
    return kernels


def export(network, task_masks, tft_output, path, spec, served=None, ticket_provenance=None):
    """Write the SavedModel to `path` (written aside, then renamed into place); `spec` and
    `served` as for `ServingModule`; `ticket_provenance` is published with the masks
    (`modules/ticket_reuse.py`)."""
    module = ServingModule(network, task_masks, tft_output, spec, served)
    tmp = path.rstrip("/") + ".tmp"
    if tf.io.gfile.exists(tmp):
        tf.io.gfile.rmtree(tmp)
    tf.saved_model.save(module, tmp, signatures={
        "serving_default": module.serve, "transform_features": module.transform_features,
        "evaluation": module.evaluate})
    masks_lib.save(f"{tmp}/{EXTRA_DIR}", task_masks, ticket_provenance)
    tf.train.Checkpoint(network=network).write(f"{tmp}/{NETWORK_CHECKPOINT}")
    tf.io.gfile.rename(tmp, path, overwrite=True)
    return path
