"""Property tests of the pushed model's `serving_default` signature, loaded like TF Serving does.

Random bytes, empty strings, huge lists, unseen and invalid-UTF-8 ids: every request gets either a
clean `InvalidArgumentError` (TF Serving's INVALID_ARGUMENT) or finite probabilities in [0, 1].
The model is the one pushed by the crash-recovery scenario (fixture `recovered_run`).
"""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from hypothesis import given, settings
from hypothesis import strategies as st

from modules import features
from modules.spec import vocabulary_name
from pipeline import mlmd, serving
from modules.config import Config
from reliability import helpers

pytestmark = pytest.mark.e2e

FUZZ = settings(max_examples=150, deadline=None, database=None, derandomize=True)
ID_FEATURES = features.SINGLE_VALUED + features.MULTI_VALUED
MAX_LIST_LENGTH = Config().data.max_list_length   # the tiny CI config keeps the default


@pytest.fixture(scope="module")
def model(recovered_run):
    assert recovered_run["exit_codes"][-1] == 0, recovered_run["log"][-3000:]
    return serving.ServingSession(recovered_run["serving_dir"])


@pytest.fixture(scope="module")
def tft_output(recovered_run):
    outputs = mlmd.latest_outputs(mlmd.connection_config(recovered_run["metadata"]), "lt4rec")
    return tft.TFTransformOutput(outputs["Transform"]["transform_graph"][0].uri)


@pytest.fixture(scope="module")
def seen(tft_output):
    """Values the model was trained on, per vocabulary group (first 200 of each vocabulary)."""
    return {group: tft_output.vocabulary_by_name(vocabulary_name(group))[:200]
            for group in Config().spec.vocabulary_groups()}


def _example(feature_values):
    example = tf.train.Example()
    for name, (kind, values) in feature_values.items():
        getattr(example.features.feature[name], kind).value.extend(values)
    return example.SerializeToString()


def _assert_probabilities(scores, batch):
    assert set(scores) == {"ctr", "cvr", "ctcvr"}
    for name, value in scores.items():
        assert value.shape == (batch,), name
        assert np.all(np.isfinite(value)) and np.all((value >= 0) & (value <= 1)), name
    np.testing.assert_allclose(scores["ctcvr"], scores["ctr"] * scores["cvr"], rtol=1e-5)


def _id_values(seen_values):
    value = st.one_of(st.binary(max_size=24), st.just(b""), st.sampled_from(seen_values),
                      st.sampled_from(helpers.NON_UTF8_KEYWORDS))
    return st.lists(value, max_size=12)


@st.composite
def _examples(draw, seen):
    """A serialized tf.Example: any subset of the id features (seen, unseen, empty, invalid
    UTF-8 values, empty lists), optionally labels/pctr of the right type with any value."""
    values = {}
    for name in draw(st.sets(st.sampled_from(ID_FEATURES))):
        values[name] = ("bytes_list", draw(_id_values(seen[Config().spec.feature(name).table])))
    if draw(st.booleans()):
        values[features.LABEL] = ("int64_list", [draw(st.integers(-2**63, 2**63 - 1))])
        values[features.CVR_LABEL] = ("float_list", [draw(st.floats(width=32))])
        values[features.PCTR] = ("bytes_list", [draw(st.binary(max_size=16))])
    return _example(values)


def test_fuzzed_examples_get_valid_probabilities(model, seen):
    @FUZZ
    @given(st.lists(_examples(seen), max_size=16))
    def check(batch):
        _assert_probabilities(model.score(batch), len(batch))
    check()


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=300), st.just(b"")), max_size=8))
def test_random_bytes_get_a_clean_error_or_valid_probabilities(model, batch):
    try:
        scores = model.score(batch)
    except tf.errors.InvalidArgumentError as error:
        assert error.message                       # e.g. "element(s) [1] are not serialized ..."
        return
    _assert_probabilities(scores, len(batch))


def test_non_example_bytes_error_names_the_element(model):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"element\(s\) \[1\] are not "):
        model.score([b"", b"\x0a\xff\xff\xff\xff\xff\x80\xfe"])
    _assert_probabilities(model.score([b""]), 1)   # the session is still usable


@FUZZ
@given(name=st.sampled_from(ID_FEATURES),
       kind=st.sampled_from([("int64_list", [7]), ("float_list", [0.5])]))
def test_wrong_value_type_gets_an_error_naming_the_feature(model, name, kind):
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"Key: {name}\\b"):
        model.score([_example({name: kind})])


@pytest.mark.parametrize("length", [1000, 100_000])
def test_huge_lists_are_truncated_to_max_list_length(model, seen, length):
    """Documented tolerance: only the first `data.max_list_length` values of a list are used."""
    words = (seen["FEA_IXFTAG"] * (length // len(seen["FEA_IXFTAG"]) + 1))[:length]
    long = model.score([_example({"FEA_IKEYWORD": ("bytes_list", words)})])
    short = model.score([_example({"FEA_IKEYWORD": ("bytes_list", words[:MAX_LIST_LENGTH])})])
    _assert_probabilities(long, 1)
    for name in long:
        np.testing.assert_allclose(long[name], short[name], rtol=1e-6)


def test_unseen_ids_get_valid_and_finite_probabilities(model):
    unseen = {name: ("bytes_list", [b"never-seen-" + name.encode()] * (
        3 if name in features.MULTI_VALUED else 1)) for name in ID_FEATURES}
    _assert_probabilities(model.score([_example(unseen)] * 4), 4)


def test_invalid_utf8_keywords_are_opaque_vocabulary_entries(model, tft_output):
    """Documented tolerance: keyword bytes are ids, not text; invalid UTF-8 from the training
    logs gets its own vocabulary id (no lossy decoding), in Transform and in serving alike."""
    vocabulary = tft_output.vocabulary_by_name(vocabulary_name("FEA_IXFTAG"))
    decoded = [k.decode("utf-8", errors="replace").encode() for k in helpers.NON_UTF8_KEYWORDS]
    example = _example({"FEA_IKEYWORD": ("bytes_list", list(helpers.NON_UTF8_KEYWORDS) + decoded)})
    raw = tf.io.parse_example([example], tft_output.raw_feature_spec())
    ids = tft_output.transform_features_layer()(raw)["FEA_IKEYWORD"].numpy()[0]
    expected = [vocabulary.index(k) for k in helpers.NON_UTF8_KEYWORDS]
    assert list(ids[:2]) == expected
    assert all(i >= len(vocabulary) for i in ids[2:4])        # the U+FFFD versions are OOV
    _assert_probabilities(model.score([example]), 1)


@pytest.mark.parametrize("content", ["truncated", "not examples"])
def test_lt4rec_predict_names_the_file_it_cannot_score(recovered_run, tmp_path, capsys, content):
    """A good file is scored first, then a bad one fails: the error names it, and `--out` is not
    left half-written."""
    from pipeline import cli
    examples = helpers.read_examples(recovered_run["data"])
    helpers.write_examples(str(tmp_path / "in" / "a-good.tfrecord.gz"), examples[:300])
    path = str(tmp_path / "in" / "b-bad.tfrecord.gz")
    if content == "truncated":
        helpers.write_examples(path, examples[:50])
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2])
    else:
        with tf.io.TFRecordWriter(path, "GZIP") as writer:
            writer.write(b"\x0a\xff\xff\xff\xff\xff\x80\xfe")
    out = tmp_path / "out" / "scores.jsonl"
    out.parent.mkdir()
    code = cli.main(["predict", "--model", recovered_run["serving_dir"], "--data",
                     str(tmp_path / "in" / "*.tfrecord.gz"), "--out", str(out)])
    assert code == 1
    assert f"cannot score {path}" in capsys.readouterr().err
    assert os.listdir(out.parent) == []
