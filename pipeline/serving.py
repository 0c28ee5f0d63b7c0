"""Score with a pushed model the way TF Serving does, and the `lt4rec predict` command.

TF Serving loads a SavedModel version directory into a session (tag `serve`), looks up the
requested SignatureDef and runs its input/output tensors. `ServingSession` does the same from
Python and speaks `tensorflow_serving.apis.predict_pb2` PredictRequest/PredictResponse.
"""
import json
import os
import sys
import warnings

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from modules.serving_dir import newest_version


def latest_version(model_dir):
    """`model_dir` itself if it holds a SavedModel, else its highest numeric version directory
    holding one (`newest_version`)."""
    if tf.io.gfile.exists(os.path.join(model_dir, "saved_model.pb")):
        return model_dir
    newest = newest_version(model_dir)
    if newest is None:
        raise FileNotFoundError(f"no SavedModel or numeric version directory in {model_dir}")
    return newest


class ServingSession:
    """A SavedModel loaded into a TF1 session by tag, run through a SignatureDef."""

    def __init__(self, model_dir):
        self.path = latest_version(model_dir)
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], self.path)
        self.signatures = dict(meta_graph.signature_def)

    def predict(self, request):
        """Run a PredictRequest; returns a PredictResponse (like TF Serving's Predict RPC)."""
        name = request.model_spec.signature_name or "serving_default"
        if name not in self.signatures:
            raise KeyError(f"signature '{name}' not in {sorted(self.signatures)}")
        signature = self.signatures[name]
        feeds = {signature.inputs[key].name: tf.make_ndarray(proto)
                 for key, proto in request.inputs.items()}
        keys = list(request.output_filter) or sorted(signature.outputs)
        try:
            values = self.session.run([signature.outputs[k].name for k in keys], feed_dict=feeds)
        except UnicodeDecodeError as error:
            # TF's Python binding cannot decode a status message that quotes non-UTF-8 input bytes
            # (ParseExample quotes what it could not parse); TF Serving answers INVALID_ARGUMENT.
            raise tf.errors.InvalidArgumentError(None, None, _unparsable(request)) from error
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for key, value in zip(keys, values):
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def score(self, serialized_examples):
        """{output: numpy array} for a list of serialized tf.Examples."""
        response = self.predict(make_request(serialized_examples))
        return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def _unparsable(request):
    """Error message naming the request's string inputs that are not serialized tf.Examples."""
    bad = {}
    for key, proto in request.inputs.items():
        if proto.dtype == tf.string.as_datatype_enum:
            for i, value in enumerate(tf.make_ndarray(proto).reshape(-1)):
                try:
                    with warnings.catch_warnings():   # protobuf warns on some garbage it rejects
                        warnings.simplefilter("ignore")
                        tf.train.Example.FromString(value)
                except Exception:  # google.protobuf.message.DecodeError and friends
                    bad.setdefault(key, []).append(i)
    if not bad:
        return "invalid input: TF rejected input bytes with an undecodable (non-UTF-8) message"
    return "invalid input: " + "; ".join(
        f"input '{key}' element(s) {indices[:10]} are not serialized tf.Examples"
        for key, indices in sorted(bad.items()))


def make_request(serialized_examples, signature="serving_default", model="lt4rec"):
    """A PredictRequest carrying serialized tf.Examples as the `examples` input."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    request.inputs["examples"].CopyFrom(
        tf.make_tensor_proto(list(serialized_examples), dtype=tf.string))
    return request


def predict_files(model_dir, pattern, out=None, batch_size=256):
    """Score every example of gzip/plain TFRecord files matching `pattern`; JSON lines out.

    A file that is unreadable or holds invalid examples raises ValueError naming the file.
    `out` is written atomically: it appears only when every file was scored.
    """
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no files match {pattern}")
    session = ServingSession(model_dir)
    if not out:
        return _score_files(session, files, sys.stdout, batch_size)
    partial = f"{out}.incomplete"
    try:
        with open(partial, "w", encoding="utf-8") as stream:
            count = _score_files(session, files, stream, batch_size)
        os.replace(partial, out)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return count


def _score_files(session, files, stream, batch_size):
    """Write one JSON line of scores per example of `files`; returns the number of examples."""
    count = 0
    for path in files:
        compression = "GZIP" if path.endswith(".gz") else ""
        dataset = tf.data.TFRecordDataset(path, compression_type=compression).batch(batch_size)
        try:
            for batch in dataset:
                scores = session.score(batch.numpy().tolist())
                for i in range(len(batch)):
                    stream.write(json.dumps(
                        {k: float(v[i]) for k, v in sorted(scores.items())}) + "\n")
                count += len(batch)
        except tf.errors.OpError as error:
            raise ValueError(f"cannot score {path}: {error.message} (predict reads TFRecords of "
                             f"tf.Example, gzip when named .gz; `lt4rec convert --unlabeled` "
                             f"makes them from a CSV or Parquet file)") from error
    return count
