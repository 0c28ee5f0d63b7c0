"""Tests of the synthetic LT4REC log generator and its agreement with schema/schema.pbtxt."""
import collections
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from sklearn.metrics import roc_auc_score

from modules import features
from pipeline import cli, synthetic_data

ROWS = 2000
SEED = 11
SMALL_ROWS = 4000                    # the size of the real small log samples small_logs mimics
PROFILES = sorted(synthetic_data.PROFILES)
SCHEMA = os.path.join(os.path.dirname(__file__), os.pardir, "schema", "schema.pbtxt")
ONE_VALUE = features.SINGLE_VALUED + (features.LABEL, features.CVR_LABEL, features.PCTR,
                                      features.SEQNUM)
# (min, mean, max) list lengths measured on the real LT4REC data.
REAL_LENGTHS = {
    "FEA_SIKEYWORD": (1, 7.3, 8), "FEA_STAG": (1, 4.3, 6), "FEA_IXFTAG": (1, 5.6, 6),
    "FEA_IKEYWORD": (2, 7.6, 8), "FEA_UCAT": (1, 3.7, 6),
}


def _read(paths):
    records = tf.data.TFRecordDataset(paths, compression_type="GZIP")
    return [tf.train.Example.FromString(r) for r in records.as_numpy_iterator()]


def _values(feature):
    return getattr(feature, feature.WhichOneof("kind")).value


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return synthetic_data.write_dataset(str(tmp_path_factory.mktemp("data")), ROWS, SEED, shards=2)


@pytest.fixture(scope="module")
def parsed(dataset):
    return _read(dataset)


@pytest.fixture(scope="module")
def small_logs_dataset(tmp_path_factory):
    return synthetic_data.write_dataset(str(tmp_path_factory.mktemp("small_logs")), SMALL_ROWS,
                                        SEED, profile="small_logs")


@pytest.fixture(scope="module", params=PROFILES)
def large(request):
    return synthetic_data.simulate(20000, SEED, request.param)


def _id_counts(column):
    """Occurrences of each non-missing value of a column (list values counted one by one)."""
    values = (v for row in column for v in (row if isinstance(row, tuple) else (row,)))
    return np.array(list(collections.Counter(
        v for v in values if v != features.MISSING.encode()).values()))


def test_shards_are_named_and_hold_every_row(dataset, parsed):
    assert [os.path.basename(p) for p in dataset] == [
        "data-00000-of-00002.tfrecord.gz", "data-00001-of-00002.tfrecord.gz"]
    assert len(parsed) == ROWS


def test_every_example_has_exactly_the_raw_features_with_their_kinds(parsed):
    kinds = {name: "bytes_list" for name in features.RAW_FEATURES}
    kinds.update({features.LABEL: "int64_list", features.CVR_LABEL: "float_list"})
    for example in parsed:
        feature = example.features.feature
        assert set(feature) == set(features.RAW_FEATURES)
        assert {name: f.WhichOneof("kind") for name, f in feature.items()} == kinds
        assert all(len(_values(feature[name])) == 1 for name in ONE_VALUE)


def test_list_lengths_match_the_real_data(parsed, large):
    for name, (low, mean, high) in REAL_LENGTHS.items():
        lengths = np.array([len(_values(e.features.feature[name])) for e in parsed])
        assert low <= lengths.min() and lengths.max() <= high, name
        large_mean = np.mean([len(values) for values in large.columns[name]])
        assert abs(large_mean - mean) < 0.2, (name, large_mean)


def test_features_of_a_shared_vocabulary_share_values():
    columns = synthetic_data.generate(ROWS, SEED)
    seen = {name: {v for row in columns[name] for v in (row if isinstance(row, tuple) else [row])}
            for name in features.STRING_FEATURES}
    for members in features.SHARED_VOCABULARIES.values():
        for name in members:
            others = set().union(*(seen[m] for m in members if m != name))
            assert seen[name] - {features.MISSING.encode()} & others, name


@pytest.mark.parametrize("data, rows", [("dataset", ROWS), ("small_logs_dataset", SMALL_ROWS)])
def test_data_conforms_to_the_schema(data, rows, request):
    dataset = request.getfixturevalue(data)
    schema = tfdv.load_schema_text(SCHEMA)
    assert {f.name for f in schema.feature} == set(features.RAW_FEATURES)
    pattern = os.path.join(os.path.dirname(dataset[0]), "*.tfrecord.gz")
    stats = tfdv.generate_statistics_from_tfrecord(data_location=pattern)
    assert stats.datasets[0].num_examples == rows
    anomalies = tfdv.validate_statistics(stats, schema, environment="TRAINING")
    assert not anomalies.anomaly_info, anomalies


def test_label_rates_and_cvrlabel_range(large):
    label = np.array(large.columns[features.LABEL])
    cvrlabel = np.array(large.columns[features.CVR_LABEL])
    clicked = label == 1
    assert set(label) == {0, 1}
    assert 0.30 <= clicked.mean() <= 0.48
    assert np.all(cvrlabel[~clicked] == 0.0)
    assert np.all((cvrlabel[clicked] > 0.0) & (cvrlabel[clicked] <= 1.0))
    assert np.median(cvrlabel[clicked]) == 1.0
    assert 0.55 <= (cvrlabel[clicked] >= 0.8).mean() <= 0.80


def test_latent_logits_are_predictive(large):
    label = np.array(large.columns[features.LABEL])
    clicked = label == 1
    converted = np.array(large.columns[features.CVR_LABEL])[clicked] >= 0.8
    assert roc_auc_score(label, large.click_logit) >= 0.75
    assert roc_auc_score(converted, large.completion_logit[clicked]) >= 0.70
    pctr = np.array([float(p) for p in large.columns[features.PCTR]])
    assert roc_auc_score(label, pctr) >= 0.70


def _rates(columns, mask):
    label = np.array(columns[features.LABEL])
    cvrlabel = np.array(columns[features.CVR_LABEL])
    return label[mask].mean(), (cvrlabel[mask & (label == 1)] >= 0.8).mean()


def test_cover_quality_raises_clicks_but_lowers_completion(large):
    cover = np.array(large.columns["FEA_COVERQUALITY"])
    plain_ctr, plain_cvr = _rates(large.columns, cover == b"0")
    clickbait_ctr, clickbait_cvr = _rates(large.columns, cover == b"3")
    assert clickbait_ctr > plain_ctr + 0.1
    assert clickbait_cvr < plain_cvr - 0.1


def test_long_videos_lower_completion_but_not_clicks(large):
    duration = np.array([int(d) for d in large.columns["FEA_DURATION"]])
    short_ctr, short_cvr = _rates(large.columns, duration <= 60)
    long_ctr, long_cvr = _rates(large.columns, duration >= 240)
    assert long_cvr < short_cvr - 0.1
    assert abs(long_ctr - short_ctr) < 0.05


def test_requests_share_one_user():
    columns = synthetic_data.generate(ROWS, SEED)
    users = {}
    for request, user in zip(columns[features.SEQNUM], columns["FEA_UID"]):
        assert users.setdefault(request, user) == user
    assert len(users) < ROWS / 2


def test_small_logs_ids_are_long_tailed_unlike_the_default():
    small = synthetic_data.generate(SMALL_ROWS, SEED, profile="small_logs")
    default = synthetic_data.generate(SMALL_ROWS, SEED)
    # Measured at 4,000 rows, seed 11 (small_logs / default): share of distinct ids seen <= 2
    # times VID 0.94 / 0.38, UID 0.85 / 0.03, CP 0.82 / 0.23, IXFTAG 0.84 / 0.08.
    for name, bound in (("FEA_VID", 0.85), ("FEA_UID", 0.75), ("FEA_CP", 0.7),
                        ("FEA_IXFTAG", 0.7)):
        small_counts, default_counts = _id_counts(small[name]), _id_counts(default[name])
        assert (small_counts <= 2).mean() > bound, name
        assert (small_counts == 1).mean() > 0.5, name
        assert (default_counts <= 2).mean() < 0.5, name
    # A long tail, not a uniform spread: the most frequent CP and tag recur many times.
    assert _id_counts(small["FEA_CP"]).max() >= 30
    assert _id_counts(small["FEA_IXFTAG"]).max() >= 100


def test_small_logs_keep_the_rates_and_the_page_positions():
    simulation = synthetic_data.simulate(SMALL_ROWS, SEED, profile="small_logs")
    columns = simulation.columns
    label = np.array(columns[features.LABEL])
    completed = np.array(columns[features.CVR_LABEL])[label == 1] == 1.0
    click_p = 1 / (1 + np.exp(-simulation.click_logit))
    completion_p = 1 / (1 + np.exp(-simulation.completion_logit))
    assert click_p.mean() == pytest.approx(synthetic_data.CLICK_RATE, abs=1e-6)
    assert np.average(completion_p, weights=click_p) == pytest.approx(
        synthetic_data.COMPLETION_RATE, abs=1e-6)
    assert 0.35 <= label.mean() <= 0.43
    assert 0.62 <= completed.mean() <= 0.72
    request_user = {}
    for request, user in zip(columns[features.SEQNUM], columns["FEA_UID"]):
        assert request_user.setdefault(request, user) == user
    assert 1.2 <= SMALL_ROWS / len(request_user) <= 1.5     # 1 + Poisson(0.3) rows per request
    assert set(columns["FEA_ORDER"]) == {str(p).encode() for p in range(-1, 10)}


def test_unknown_profile_is_rejected():
    with pytest.raises(ValueError, match="unknown profile 'tiny'"):
        synthetic_data.simulate(10, SEED, profile="tiny")


@pytest.mark.parametrize("profile", PROFILES)
def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path, profile):
    first = list(synthetic_data.examples(300, SEED, profile))
    assert first == list(synthetic_data.examples(300, SEED, profile))
    assert first != list(synthetic_data.examples(300, SEED + 1, profile))
    files = [synthetic_data.write_dataset(str(tmp_path / d), 300, SEED, profile=profile)[0]
             for d in ("a", "b")]
    with open(files[0], "rb") as a, open(files[1], "rb") as b:
        assert a.read() == b.read()


def test_profiles_differ_and_default_is_the_default():
    default = list(synthetic_data.examples(300, SEED))
    assert default == list(synthetic_data.examples(300, SEED, "default"))
    assert default != list(synthetic_data.examples(300, SEED, "small_logs"))


def test_cli_synth_writes_the_profile(tmp_path, capsys):
    for name in PROFILES:
        assert cli._parser().parse_args(["synth", "--out", "x", "--profile", name]).profile == name
    assert cli.main(["synth", "--out", str(tmp_path / "cli"), "--rows", "200", "--seed", "3",
                     "--profile", "small_logs"]) == 0
    assert "wrote 200 examples" in capsys.readouterr().out
    [expected] = synthetic_data.write_dataset(str(tmp_path / "api"), 200, 3, profile="small_logs")
    name = os.path.basename(expected)
    assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "api" / name).read_bytes()


@pytest.mark.parametrize("profile", PROFILES)
def test_splits_write_train_and_eval_by_request_without_temp_files(tmp_path, profile):
    paths = synthetic_data.write_dataset(str(tmp_path), 1000, SEED, splits=True, profile=profile)
    assert sorted(os.listdir(tmp_path)) == ["eval", "train"]
    assert sorted(os.path.relpath(p, tmp_path) for p in paths) == [
        os.path.join(split, "data-00000-of-00001.tfrecord.gz") for split in ("eval", "train")]
    assert all(os.listdir(tmp_path / split) == ["data-00000-of-00001.tfrecord.gz"]
               for split in ("eval", "train"))
    train, evaluation = (_read([str(tmp_path / s / "data-00000-of-00001.tfrecord.gz")])
                         for s in ("train", "eval"))
    assert len(train) + len(evaluation) == 1000
    assert 0.1 <= len(evaluation) / 1000 <= 0.3
    requests = [{_values(e.features.feature[features.SEQNUM])[0] for e in part}
                for part in (train, evaluation)]
    assert not requests[0] & requests[1]


def test_spans_bring_new_ids_each_day_and_drift_at_the_same_rates(tmp_path, capsys):
    assert cli.main(["synth", "--out", str(tmp_path / "cli"), "--rows", "1500", "--seed", "3",
                     "--spans", "3"]) == 0
    assert "wrote 3 spans of 1500 examples" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "cli")) == ["span-1", "span-2", "span-3"]
    paths = synthetic_data.write_spans(str(tmp_path / "api"), 3, 1500, 3)
    for path in paths:          # the same bytes for the same seed
        relative = os.path.relpath(path, tmp_path / "api")
        assert (tmp_path / "cli" / relative).read_bytes() == (tmp_path / "api" / relative) \
            .read_bytes()
    days = [synthetic_data.simulate(1500, 3, day=d, days=3) for d in (1, 2, 3)]
    vids = [set(d.columns["FEA_VID"]) for d in days]
    for before, after in zip(vids, vids[1:]):
        assert len(after - before) > 0.2 * len(after)       # new ids every day ...
        assert len(after & before) > 0.3 * len(after)       # ... beside known ones
    assert len(vids[1] - vids[0]) > len((vids[2] - vids[1]) & vids[0])   # first shown on day 2
    for day in days:
        click = _sigmoid(day.click_logit)
        assert click.mean() == pytest.approx(synthetic_data.CLICK_RATE, abs=1e-6)
    # tastes drift linearly from day 1's, which is the world's own
    world = synthetic_data._world(np.random.default_rng(3),
                                  synthetic_data.PROFILES["default"].sizes(4500))
    taste = [synthetic_data._on_day(world, d, 3, 3)["user_taste"] for d in (1, 2, 3)]
    assert np.array_equal(taste[0], world["user_taste"])
    assert np.abs(taste[2] - taste[0]).mean() > 0.01
    np.testing.assert_allclose(taste[2] - taste[0], 2 * (taste[1] - taste[0]), atol=1e-12)
    with pytest.raises(ValueError, match="day must be in 1..3"):
        synthetic_data.simulate(10, 3, day=4, days=3)


def _sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x)))
