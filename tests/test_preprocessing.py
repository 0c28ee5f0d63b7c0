"""preprocessing_fn through tft_beam on hand-written examples."""
import json
import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata

from modules import features, preprocessing
from modules.spec import vocabulary_name
from modules.config import Config

MAX_LEN = 4


def _row(**overrides):
    row = {name: [b"x"] for name in features.SINGLE_VALUED}
    row.update({name: [b"t1", b"t2"] for name in features.MULTI_VALUED})
    row.update({features.LABEL: [1], features.CVR_LABEL: [0.9], features.PCTR: [b"0.25"],
                features.SEQNUM: [b"r1"]})
    row.update({k: v for k, v in overrides.items()})
    return row


def _spec():
    spec = {name: tf.io.VarLenFeature(tf.string) for name in features.STRING_FEATURES}
    spec.update({features.LABEL: tf.io.VarLenFeature(tf.int64),
                 features.CVR_LABEL: tf.io.VarLenFeature(tf.float32),
                 features.PCTR: tf.io.VarLenFeature(tf.string),
                 features.SEQNUM: tf.io.VarLenFeature(tf.string)})
    return spec


TRAIN = [
    _row(FEA_VID=[b"v1"], FEA_SVID=[b"v2"], FEA_ICAT2=[b"c1"], FEA_UCAT=[b"c1", b"c2", b"c3"],
         FEA_IXFTAG=[b"tagA"], FEA_STAG=[b"tagB"], FEA_IKEYWORD=["\u7535\u5f71".encode()]),
    _row(FEA_VID=[b"v2"], FEA_SVID=[b"v1"], FEA_ICAT1=[b"c2"], FEA_SICAT1=[b"c3"],
         FEA_UCAT=[b"c%d" % i for i in range(10)], label=[0], cvrlabel=[0.0], pctr=[b"oops"]),
    _row(FEA_VID=[b"v1"], FEA_SVID=[b"v3"], label=[1], cvrlabel=[0.5], pctr=[b"1e-2"]),
]
UNSEEN = [_row(FEA_VID=[b"never-seen"], FEA_SVID=[b"v1"], FEA_UCAT=[])]


@pytest.fixture(scope="module")
def transformed():
    config = Config.from_dict({"data": {"max_list_length": MAX_LEN},
                               "vocab": {"num_oov_buckets": 3}})
    custom = {"config": config.to_json()}
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(_spec())
    with tempfile.TemporaryDirectory() as tmp, tft_beam.Context(temp_dir=tmp):
        (data, _), transform_fn = (
            (TRAIN, metadata) | tft_beam.AnalyzeAndTransformDataset(
                lambda inputs: preprocessing.preprocessing_fn(inputs, custom)))
        unseen, _ = ((UNSEEN, metadata), transform_fn) | tft_beam.TransformDataset()
        out_dir = tmp + "/out"
        _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
        tft_output = tft.TFTransformOutput(out_dir)
        sizes = {g: tft_output.vocabulary_size_by_name(vocabulary_name(g))
                 for g in Config().spec.vocabulary_groups()}
        assets = sorted(tf.io.gfile.listdir(os.path.join(tft_output.transform_savedmodel_dir,
                                                         "assets")))
        yield data, unseen, sizes, assets


def test_shared_vocabulary_ids_agree_across_group(transformed):
    data, _, sizes, _ = transformed
    # "v1" is FEA_VID in rows 0 and 2 and FEA_SVID in row 1: one id everywhere.
    assert data[0]["FEA_VID"] == data[1]["FEA_SVID"] == data[2]["FEA_VID"]
    assert data[1]["FEA_VID"] == data[0]["FEA_SVID"]            # "v2"
    assert data[0]["FEA_VID"] != data[0]["FEA_SVID"]
    # "v3" only ever appears in FEA_SVID and is still in the group's vocabulary.
    assert 0 <= data[2]["FEA_SVID"] < sizes["FEA_VID"]
    assert sizes["FEA_VID"] == 3
    # c1..c9 seen through FEA_UCAT, FEA_ICAT1, FEA_ICAT2, FEA_SICAT1: one table for the group.
    c1 = data[0]["FEA_ICAT2"]
    assert data[0]["FEA_UCAT"][0] == c1
    assert data[1]["FEA_ICAT1"] == data[0]["FEA_UCAT"][1]        # "c2"
    assert data[1]["FEA_SICAT1"] == data[0]["FEA_UCAT"][2]       # "c3"
    assert data[0]["FEA_STAG"][0] != data[0]["FEA_IXFTAG"][0]


def test_oov_values_map_to_oov_ids(transformed):
    _, unseen, sizes, _ = transformed
    vid = unseen[0]["FEA_VID"]
    assert sizes["FEA_VID"] <= vid < sizes["FEA_VID"] + 3


def test_multi_valued_lengths_survive_and_truncate(transformed):
    data, unseen, _, _ = transformed
    lengths = [int(np.sum(np.asarray(r["FEA_UCAT"]) != features.PAD_ID)) for r in data]
    assert lengths == [3, MAX_LEN, 2]
    assert len(data[0]["FEA_UCAT"]) == MAX_LEN
    assert list(unseen[0]["FEA_UCAT"]) == [features.PAD_ID] * MAX_LEN   # empty list


def test_labels_and_scores(transformed):
    data, _, _, _ = transformed
    assert [r["label"] for r in data] == [1, 0, 1]
    assert [r["conversion"] for r in data] == [1.0, 0.0, 0.0]
    np.testing.assert_allclose([r["cvrlabel"] for r in data], [0.9, 0.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose([r["pctr_score"] for r in data], [0.25, -1.0, 0.01], rtol=1e-6)
    assert "seqnum" not in data[0] and "pctr" not in data[0]


def test_transform_outputs_are_the_golden_default(transformed):
    """The LT4REC default's Transform output keys and vocabulary files, as committed."""
    with open(os.path.join(os.path.dirname(__file__), "golden_default.json"),
              encoding="utf-8") as f:
        golden = json.load(f)
    data, _, _, assets = transformed
    assert sorted(data[0]) == golden["transform_output_keys"]
    assert assets == golden["vocabulary_files"]
