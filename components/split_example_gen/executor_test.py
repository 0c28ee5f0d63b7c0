"""SplitExampleGen's splitting: TFX's hash, split keys, the carved validation share, a Beam run."""
import collections
import json
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from tfx.components.example_gen import base_example_gen_executor
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.split_example_gen import executor

HASH_BOUNDS = [18, 20, 25]         # cumulative buckets of the default train/validation/eval split


def make_example(seqnum, uid, label=0, order=("seqnum", "FEA_UID", "label")):
    """A small tf.Example; `order` is the order its features are inserted in."""
    values = {"seqnum": tf.train.Feature(bytes_list=tf.train.BytesList(value=[seqnum.encode()])),
              "FEA_UID": tf.train.Feature(bytes_list=tf.train.BytesList(value=[uid.encode()])),
              "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
    example = tf.train.Example()
    for name in order:
        example.features.feature[name].CopyFrom(values[name])
    return example


def many(count, sessions=None, seed=0):
    """`count` distinct examples; with `sessions`, their seqnums take that many values."""
    rng = np.random.default_rng(seed)
    return [make_example(f"s{i % sessions if sessions else i}", f"u{rng.integers(10 ** 9)}",
                         int(rng.integers(2))) for i in range(count)]


def partitions(examples, bounds, split_key):
    return [executor._bucket_partition(e, len(bounds), bounds, split_key) for e in examples]


def test_split_hash_is_deterministic_whatever_the_feature_order():
    a = make_example("s1", "u1", order=("seqnum", "FEA_UID", "label"))
    b = make_example("s1", "u1", order=("label", "FEA_UID", "seqnum"))
    for key in ("", "seqnum", "FEA_UID"):
        assert executor.split_hash(a, key) == executor.split_hash(b, key)
    assert executor.split_hash(a, "") != executor.split_hash(make_example("s1", "u2"), "")
    assert executor.split_hash(a, "seqnum") == executor.split_hash(make_example("s1", "u2"),
                                                                   "seqnum")


@pytest.mark.parametrize("split_key", ["", "seqnum"])
def test_partition_is_the_one_tfx_split_config_gives(split_key):
    """Same split as TFX's own hash partition (`SplitConfig.partition_feature_name`)."""
    config = example_gen_pb2.SplitConfig(partition_feature_name=split_key) if split_key \
        else example_gen_pb2.SplitConfig()
    examples = many(300, sessions=50)
    assert partitions(examples, HASH_BOUNDS, split_key) == [
        base_example_gen_executor._PartitionFn(e, 3, HASH_BOUNDS, config) for e in examples]


def test_a_split_key_keeps_records_with_the_same_key_in_one_split():
    examples = many(600, sessions=30)
    by_key, by_record = collections.defaultdict(set), collections.defaultdict(set)
    for example, keyed, whole in zip(examples, partitions(examples, HASH_BOUNDS, "seqnum"),
                                     partitions(examples, HASH_BOUNDS, "")):
        seqnum = example.features.feature["seqnum"].bytes_list.value[0]
        by_key[seqnum].add(keyed)
        by_record[seqnum].add(whole)
    assert all(len(splits) == 1 for splits in by_key.values())
    assert len(set().union(*by_key.values())) == 3           # the keys still go everywhere
    assert any(len(splits) > 1 for splits in by_record.values())


@pytest.mark.parametrize("example", [make_example("s1", "u1", order=("FEA_UID", "label")),
                                     tf.train.Example(features=tf.train.Features(
                                         feature={"seqnum": tf.train.Feature()}))],
                         ids=["absent", "empty"])
def test_a_record_without_the_split_key_is_refused_naming_it(example):
    with pytest.raises(ValueError, match="data.split_key: feature 'seqnum' is missing"):
        executor.split_hash(example, "seqnum")


@pytest.mark.parametrize("share", [0.1, 0.25])
def test_carved_validation_share_follows_the_setting(share):
    bounds = [round(share * executor.CARVE_BUCKETS), executor.CARVE_BUCKETS]
    carved = np.mean(np.array(partitions(many(5000), bounds, "")) == 0)
    assert carved == pytest.approx(share, abs=0.02)


def test_hash_buckets_give_the_configured_fractions():
    counts = np.bincount(partitions(many(5000), HASH_BOUNDS, ""), minlength=3) / 5000
    np.testing.assert_allclose(counts, [18 / 25, 2 / 25, 5 / 25], atol=0.02)


def test_split_options_carry_key_share_and_fingerprint():
    options = json.loads(executor.split_options("seqnum", 0.2, "abc"))
    assert options == {"split_key": "seqnum", "carve_share": 0.2, "code_fingerprint": "abc",
                       "probe_validation": False, "sizing": None, "window_spans": None,
                       "row_checks": None}
    assert executor.split_options("", None, "abc") != executor.split_options("", None, "abd")


def _write(path, examples):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path, "GZIP") as writer:
        for example in examples:
            writer.write(example.SerializeToString())


def _read(directory):
    files = tf.io.gfile.glob(os.path.join(directory, "*"))
    return [tf.train.Example.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _run(tmp_path, input_config, output_config, options, span=0):
    """Executor.Do on `tmp_path/data` (`span` as TFX's driver sets it), in-process Beam;
    {split: examples}."""
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out")
    properties = {
        standard_component_specs.INPUT_BASE_KEY: str(tmp_path / "data"),
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config),
        standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(output_config),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        executor.SPLIT_OPTIONS_KEY: options, "span": span}
    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=[
        "--direct_running_mode=in_memory", "--direct_num_workers=1"])
    executor.Executor(context).Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]},
                                  properties)
    names = artifact_utils.decode_split_names(examples.split_names)
    return {name: _read(os.path.join(examples.uri, f"Split-{name}")) for name in names}


def _serialized(examples):
    return sorted(e.SerializeToString(deterministic=True) for e in examples)


def test_given_mode_carves_validation_out_of_train_by_key(tmp_path):
    train, given_eval = many(400, sessions=80, seed=1), many(50, seed=2)
    _write(str(tmp_path / "data" / "train" / "part.gz"), train)
    _write(str(tmp_path / "data" / "eval" / "part.gz"), given_eval)
    splits = _run(tmp_path, example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name=name, pattern=f"{name}/*") for name in ("train", "eval")]),
        example_gen_pb2.Output(), executor.split_options("seqnum", 0.25))
    assert list(splits) == ["train", "validation", "eval"]
    assert _serialized(splits["eval"]) == _serialized(given_eval)
    assert _serialized(splits["train"] + splits["validation"]) == _serialized(train)
    assert len(splits["validation"]) / len(train) == pytest.approx(0.25, abs=0.12)
    keys = {name: {e.features.feature["seqnum"].bytes_list.value[0] for e in split}
            for name, split in splits.items()}
    assert not keys["train"] & keys["validation"]


def _hash_mode_run(tmp_path, records, options):
    """`_run` in hash mode (the default buckets) on `records` written to `tmp_path/data`."""
    _write(str(tmp_path / "data" / "part.gz"), records)
    return _run(tmp_path, example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name="single", pattern="*")]),
        example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets)
            for name, buckets in (("train", 18), ("validation", 2), ("eval", 5))])), options)


def test_hash_mode_writes_every_record_to_its_hash_split(tmp_path):
    records = many(300, seed=3)
    splits = _hash_mode_run(tmp_path, records, executor.split_options(""))
    assert list(splits) == ["train", "validation", "eval"]
    assert _serialized(sum(splits.values(), [])) == _serialized(records)
    for index, split in enumerate(splits.values()):
        assert split and set(partitions(split, HASH_BOUNDS, "")) == {index}


def _requests(split):
    return {e.features.feature["seqnum"].bytes_list.value[0] for e in split}


@pytest.mark.parametrize("given", [False, True], ids=["hash", "given"])
def test_default_config_shares_no_request_between_any_two_splits(tmp_path, given):
    """The default split (the pipeline's own configs, default data) keeps every request whole."""
    from modules.config import Config
    from pipeline.pipeline import split_configs
    from pipeline.synthetic_data import write_dataset
    write_dataset(str(tmp_path / "data"), 1500, seed=5, splits=given)
    input_config, output_config, options, _ = split_configs(str(tmp_path / "data"), Config())
    splits = _run(tmp_path, input_config, output_config or example_gen_pb2.Output(), options)
    assert list(splits) == ["train", "validation", "eval"]
    requests = {name: _requests(split) for name, split in splits.items()}
    assert all(len(r) > 10 for r in requests.values())
    for a, b in (("train", "validation"), ("train", "eval"), ("validation", "eval")):
        assert not requests[a] & requests[b], (a, b)


@pytest.mark.parametrize("with_directory", [True, False])
def test_probe_validation_reads_a_validation_directory_at_run_time(tmp_path, with_directory):
    """`validation_from: auto` on a root the compiler cannot read is decided when ExampleGen runs."""
    train, given_eval, given_validation = many(200, seed=1), many(40, seed=2), many(30, seed=4)
    _write(str(tmp_path / "data" / "train" / "part.gz"), train)
    _write(str(tmp_path / "data" / "eval" / "part.gz"), given_eval)
    if with_directory:
        _write(str(tmp_path / "data" / "validation" / "part.gz"), given_validation)
    splits = _run(tmp_path, example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name=name, pattern=f"{name}/*") for name in ("train", "eval")]),
        example_gen_pb2.Output(), executor.split_options("seqnum", 0.25, probe_validation=True))
    assert sorted(splits) == ["eval", "train", "validation"]
    if with_directory:
        assert _serialized(splits["validation"]) == _serialized(given_validation)
        assert _serialized(splits["train"]) == _serialized(train)
    else:
        assert _serialized(splits["train"] + splits["validation"]) == _serialized(train)


@pytest.mark.parametrize("source, probed", [("auto", True), ("train", False)])
def test_a_remote_root_leaves_validation_from_auto_to_run_time(source, probed):
    from modules.config import Config
    from pipeline.pipeline import split_configs
    config = Config.from_dict({"data": {"split_mode": "given", "validation_from": source}})
    input_config, _, options, _ = split_configs("gs://bucket/data", config)
    assert [s.name for s in input_config.splits] == ["train", "eval"]
    assert json.loads(options)["probe_validation"] is probed
    assert json.loads(options)["carve_share"] == 0.1


CTR_ONLY = [{"task": "ctr", "positive": "label == 1", "rows": ""}]


def test_task_classes_follow_the_rules():
    from modules.config import Config
    from modules import tasks
    rules = tasks.class_rules(Config().spec)
    clicked = make_example("s1", "u1", label=1)
    clicked.features.feature["cvrlabel"].float_list.value.append(0.9)
    unclicked = make_example("s2", "u2", label=0)
    unclicked.features.feature["cvrlabel"].float_list.value.append(0.0)
    assert executor.task_classes(clicked, rules) == [("ctr", 1), ("cvr", 1)]
    assert executor.task_classes(unclicked, rules) == [("ctr", 0)]      # CVR: clicked rows only
    clicked.features.feature["cvrlabel"].float_list.value[0] = 0.5
    assert executor.task_classes(clicked, rules) == [("ctr", 1), ("cvr", 0)]
    assert executor.task_classes(make_example("s3", "u3", order=("seqnum",)), rules) == []
    as_bytes = make_example("s4", "u4", order=("seqnum",))
    as_bytes.features.feature["label"].bytes_list.value.append(b"1")
    assert executor.task_classes(as_bytes, rules) == []          # left to the data validator


def test_grown_share_gives_each_task_enough_rows_of_its_rarer_class():
    sizing = {"min_class_rows": 100, "max_share": 0.25,
              "rules": [{"task": "ctr"}, {"task": "cvr"}]}
    counts = {("ctr", 0): 5000, ("ctr", 1): 2000, ("cvr", 0): 500, ("cvr", 1): 1500}
    assert executor.grown_share(counts, 0.1, sizing) == pytest.approx(100 / 500)  # CVR decides
    plenty = {key: 10 * value for key, value in counts.items()}
    assert executor.grown_share(plenty, 0.1, sizing) == 0.1                 # base is enough
    assert executor.grown_share({("ctr", 0): 10, ("ctr", 1): 10}, 0.1, sizing) == 0.25  # capped
    assert executor.grown_share({}, 0.3, sizing) == 0.3                     # never below base


def _class_rows(split, label=1):
    return sum(e.features.feature["label"].int64_list.value[0] == label for e in split)


def _skewed(count, seed):
    """Records with ~5% clicks, 20 per request."""
    rng = np.random.default_rng(seed)
    return [make_example(f"s{i // 20}", f"u{i}", int(rng.random() < 0.05)) for i in range(count)]


def test_a_carved_validation_grows_to_the_rarer_class_minimum(tmp_path):
    train, given_eval = _skewed(4000, seed=1), many(50, seed=2)   # ~200 clicks in train
    _write(str(tmp_path / "data" / "train" / "part.gz"), train)
    _write(str(tmp_path / "data" / "eval" / "part.gz"), given_eval)
    given = example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name=name, pattern=f"{name}/*") for name in ("train", "eval")])
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "data").symlink_to(tmp_path / "data")
    plain = _run(tmp_path / "plain", given, example_gen_pb2.Output(),
                 executor.split_options("seqnum", 0.1))
    sizing = {"min_class_rows": 60, "max_share": 0.5, "rules": CTR_ONLY}
    sized = _run(tmp_path, given, example_gen_pb2.Output(),
                 executor.split_options("seqnum", 0.1, sizing=sizing))
    assert _serialized(sized["train"] + sized["validation"]) == _serialized(train)
    assert _serialized(sized["eval"]) == _serialized(given_eval)
    share = 60 / _class_rows(train)
    assert len(sized["validation"]) / len(train) == pytest.approx(share, abs=0.08)
    assert _class_rows(plain["validation"]) < 40 <= _class_rows(sized["validation"])
    # It grows by taking train records: what the plain carve held stays in validation.
    assert set(_serialized(plain["validation"])) < set(_serialized(sized["validation"]))
    assert not _requests(sized["train"]) & _requests(sized["validation"])


def test_a_hashed_validation_grows_out_of_train_and_leaves_eval_alone(tmp_path):
    records = _skewed(4000, seed=3)
    _write(str(tmp_path / "data" / "part.gz"), records)
    hashed = (example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name="single", pattern="*")]),
        example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets)
            for name, buckets in (("train", 18), ("validation", 2), ("eval", 5))])))
    sizing = {"min_class_rows": 1000, "max_share": 0.2, "rules": CTR_ONLY}   # the cap binds
    splits = _run(tmp_path, *hashed, executor.split_options("seqnum", sizing=sizing))
    expected = partitions(records, HASH_BOUNDS, "seqnum")
    assert _serialized(splits["eval"]) == _serialized(
        [r for r, i in zip(records, expected) if i == 2])
    assert len(splits["validation"]) / len(records) == pytest.approx(0.2, abs=0.06)
    assert set(_serialized([r for r, i in zip(records, expected) if i == 1])) < \
        set(_serialized(splits["validation"]))
    assert not _requests(splits["train"]) & _requests(splits["validation"])


def _count_check(read, held):
    """Runs `check_counts` over `read` records and splits holding `held` of them."""
    with beam.Pipeline() as pipeline:
        records = pipeline | "Read" >> beam.Create(read)
        parts = [pipeline | f"Split{i}" >> beam.Create(part) for i, part in enumerate(held)]
        executor.check_counts(records, parts, ["train", "eval"], "/data/day/*", "all")


def test_splits_holding_every_record_read_pass_the_count_check():
    _count_check(list(range(5)), [[0, 1, 2], [3, 4]])


def test_a_runner_that_lost_records_fails_the_run_naming_the_source():
    with pytest.raises(Exception, match=r"read 5 records from /data/day/\* but its splits hold "
                                        r"4 \(\{'train': 3, 'eval': 1\}\).*nothing is published"):
        _count_check(list(range(5)), [[0, 1, 2], [4]])


SCHEMA = """
feature { name: "seqnum" type: BYTES presence { min_fraction: 1.0 } }
feature { name: "FEA_UID" type: BYTES presence { min_fraction: 1.0 } }
feature { name: "label" type: INT presence { min_fraction: 1.0 } int_domain { min: 0 max: 1 } }
"""


def _hashed_run(tmp_path, records, max_dropped_fraction):
    """A hash-mode run with row checks of SCHEMA; (splits, its row-check counts)."""
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(SCHEMA)
    splits = _hash_mode_run(tmp_path, records, executor.split_options("", row_checks={
        "schema": str(schema), "max_dropped_fraction": max_dropped_fraction}))
    return splits, json.loads((tmp_path / "out" / executor.ROW_CHECKS_DIR / "all.json")
                              .read_text())


def test_records_failing_row_checks_are_dropped_and_counted_per_reason(tmp_path):
    good = many(200, seed=4)
    bad = [make_example(f"b{i}", "u", label=2) for i in range(3)] + [
        make_example(f"m{i}", "u", order=("seqnum", "label")) for i in range(2)]
    splits, counts = _hashed_run(tmp_path, good + bad, 0.05)
    assert _serialized(sum(splits.values(), [])) == _serialized(good)
    assert counts["rows_read"] == 205
    assert counts["dropped_rows"] == {"label: outside its domain [0, 1]": 3,
                                      "FEA_UID: missing": 2}


def test_more_failing_records_than_tolerated_stop_the_run_naming_each_reason(tmp_path):
    from components.split_example_gen.row_checks import DroppedRowsError
    bad = [make_example(f"b{i}", "u", label=7) for i in range(30)]
    with pytest.raises(DroppedRowsError, match=r"30 of the 130 records read from .*data/\* "
                       r"\(23.1%\).*max_dropped_fraction=0.2: label: outside its domain "
                       r"\[0, 1\]: 30 rows"):
        _hashed_run(tmp_path, many(100, seed=5) + bad, 0.2)
