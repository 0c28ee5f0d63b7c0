"""Export the trained network as one SavedModel for TF Serving and TFMA.

Signatures:
- `serving_default(examples: string[batch])` -> {`ctr`, `cvr`, `ctcvr` = ctr * cvr}: parses raw
  serialized tf.Examples, applies the Transform graph, and runs each task through its own mask.
- `transform_features(examples)` -> the transformed labels, for TFMA.
- `evaluation(examples)` -> the serving outputs plus each reference score of the spec (e.g.
  `pctr_reference`, the production score parsed from the example's `pctr`), so TFMA reports the
  production model's AUC beside ours.

Masks are baked in: each task path has its own MLP kernels holding kernel * mask, so pruned
connections are exact zeros in the exported weights. A task served from its own ticket's weights
(negative transfer, `mtl.guard_negative_transfer`) runs through that second network.
"""
import types

import tensorflow as tf

from modules import features

SERVING_OUTPUTS = ("ctr", "cvr", "ctcvr")


class ServingModule(tf.Module):
    """The exported object: network, per-task masked kernels and the Transform layer."""

    def __init__(self, network, task_masks, tft_output, served=None, references=None):
        """`served`: {task: (network, masks)} for tasks another network serves; `references`:
        {name: (score column, task)} (`Spec.reference_columns`) for the evaluation signature."""
        super().__init__()
        self._references = {name: column for name, (column, _) in (references or {}).items()}
        served = served or {}
        networks = {task: served[task][0] if task in served else network
                    for task in ("ctr", "cvr")}
        # Keep the Keras models out of the object graph (their own Keras SavedModel serialisation
        # is not wanted); track their variables directly instead.
        self._keras = types.SimpleNamespace(networks=networks)
        self.network_variables = list(network.variables)
        self.served_variables = [v for task in sorted(served) for v in served[task][0].variables]
        self.tft_layer = tft_output.transform_features_layer()
        self.task_kernels = {
            task: [tf.Variable(k, trainable=False, name=f"{task}_mlp_{i}")
                   for i, k in enumerate(networks[task].effective_kernels(
                       [tf.constant(m, tf.float32) for m in
                        (served[task][1] if task in served else task_masks[task])]))]
            for task in ("ctr", "cvr")}
        self._raw_spec = {name: spec for name, spec in tft_output.raw_feature_spec().items()}

    def _transform(self, examples):
        raw = tf.io.parse_example(examples, self._raw_spec)
        return self.tft_layer(raw)

    def _predict(self, transformed):
        networks = self._keras.networks
        ctr = tf.sigmoid(networks["ctr"].logit(transformed, "ctr", self.task_kernels["ctr"]))
        cvr = tf.sigmoid(networks["cvr"].logit(transformed, "cvr", self.task_kernels["cvr"]))
        return {"ctr": ctr, "cvr": cvr, "ctcvr": ctr * cvr}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        """Serialized raw tf.Examples -> ctr, cvr and ctcvr probabilities."""
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
        return {name: transformed[name] for name in transformed
                if name in features.TRANSFORMED_LABELS + tuple(self._references.values())}


def export(network, task_masks, tft_output, path, served=None, references=None):
    """Write the SavedModel to `path` (written aside, then renamed into place); `served` and
    `references` as for `ServingModule`."""
    module = ServingModule(network, task_masks, tft_output, served, references)
    tmp = path.rstrip("/") + ".tmp"
    if tf.io.gfile.exists(tmp):
        tf.io.gfile.rmtree(tmp)
    tf.saved_model.save(module, tmp, signatures={
        "serving_default": module.serve, "transform_features": module.transform_features,
        "evaluation": module.evaluate})
    tf.io.gfile.rename(tmp, path, overwrite=True)
    return path
