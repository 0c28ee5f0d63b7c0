"""Golden record of the LT4REC default model, so the feature/task spec can prove it unchanged.

`tests/golden_default.json` holds the default network's checkpoint keys and shapes and a hash of
its seeded initial weights (small config, fixed table sizes), and the Transform output keys and
vocabulary files (checked in test_preprocessing.py). A deliberate change rewrites it with
`python tests/test_default_golden.py --write` (run from the repo; say why in the commit).
"""
import hashlib
import json
import os
import sys
import tempfile

import numpy as np
import tensorflow as tf

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden_default.json")
TASKS = ("ctr", "cvr")
CONFIG = {"model": {"hidden_units": [16, 8], "embedding_dim": 4, "seed": 3}}


def network_record():
    """{"checkpoint": {key: shape}, "initial_weights_sha256"} of the seeded default network."""
    from modules import inputs
    from modules.config import Config
    sizes = {group: 5 + i for i, group in enumerate(sorted(Config().spec.vocabulary_groups()))}
    network = inputs.network_for(sizes, Config.from_dict(CONFIG), TASKS)
    with tempfile.TemporaryDirectory() as tmp:
        prefix = tf.train.Checkpoint(network=network).write(os.path.join(tmp, "ckpt"))
        reader = tf.train.load_checkpoint(prefix)
        keys = sorted(k for k in reader.get_variable_to_shape_map() if k.startswith("network/"))
        digest = hashlib.sha256()
        for key in keys:
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(reader.get_tensor(key)).tobytes())
        return {"checkpoint": {k: list(reader.get_variable_to_shape_map()[k]) for k in keys},
                "initial_weights_sha256": digest.hexdigest()}


def golden():
    with open(GOLDEN, encoding="utf-8") as f:
        return json.load(f)


def test_the_default_network_is_the_golden_one():
    record, expected = network_record(), golden()
    assert record["checkpoint"] == expected["checkpoint"]
    assert record["initial_weights_sha256"] == expected["initial_weights_sha256"]


def _transform_record():
    """Transform output keys and vocabulary files of the default preprocessing_fn (the raw
    columns and row of `test_preprocessing`)."""
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata
    from modules import preprocessing
    from modules.config import Config
    from test_preprocessing import _row, _spec
    custom = {"config": Config().to_json()}
    with tempfile.TemporaryDirectory() as tmp, tft_beam.Context(temp_dir=tmp):
        (data, _), transform_fn = (
            ([_row()], dataset_metadata.DatasetMetadata.from_feature_spec(_spec()))
            | tft_beam.AnalyzeAndTransformDataset(
                lambda inputs: preprocessing.preprocessing_fn(inputs, custom)))
        _ = transform_fn | tft_beam.WriteTransformFn(os.path.join(tmp, "out"))
        assets = sorted(tf.io.gfile.listdir(os.path.join(tmp, "out", "transform_fn", "assets")))
    return {"transform_output_keys": sorted(data[0]), "vocabulary_files": assets}


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_default_golden.py --write")
    sys.path.insert(0, os.path.dirname(os.path.dirname(GOLDEN)))   # this checkout's code
    text = json.dumps({**network_record(), **_transform_record()}, indent=1, sort_keys=True)
    with open(GOLDEN, "w", encoding="utf-8") as out:
        out.write(text + "\n")
    print(f"wrote {GOLDEN}")
