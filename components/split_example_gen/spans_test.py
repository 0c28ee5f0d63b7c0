"""The spans layout: which span directories count, the window, and ExampleGen reading a span (as
TFX's driver resolves it) and the window before it."""
import json
import os

import pytest
from tfx.components.example_gen import utils as example_gen_utils
from tfx.proto import example_gen_pb2

from components.split_example_gen import spans
from components.split_example_gen.executor_test import _run, _serialized, _write, many
from modules.config import Config, ConfigError
from pipeline.pipeline import split_configs


def _layout(root, numbers):
    for n in numbers:
        os.makedirs(root / f"span-{n}")


def test_span_directories_are_span_n_without_leading_zeros(tmp_path):
    _layout(tmp_path, [1, 2, 3, 10])
    os.makedirs(tmp_path / "span-04")
    os.makedirs(tmp_path / "span-0")
    (tmp_path / "span-5").write_text("a file, not a span")
    assert spans.span_directories(str(tmp_path)) == {
        1: "span-1", 2: "span-2", 3: "span-3", 10: "span-10"}
    assert spans.newest(str(tmp_path)) == 10
    assert spans.window(str(tmp_path), 10, 2) == [3, 10]            # a gap is skipped
    assert spans.window(str(tmp_path), 3, 5) == [1, 2, 3]
    with pytest.raises(ValueError, match=r"has no span-4 directory \(spans: \[1, 2, 3, 10\]\)"):
        spans.window(str(tmp_path), 4, 1)
    with pytest.raises(ValueError, match="holds no span-<N> directory"):
        spans.newest(str(tmp_path / "span-1"))


def test_a_pattern_moves_between_spans():
    assert spans.in_span("span-{SPAN}/train/*", 3) == "span-3/train/*"
    assert spans.in_span("span-12/*", 4) == "span-4/*"
    with pytest.raises(ValueError, match="does not start with a span directory"):
        spans.in_span("train/*", 1)


def _config(**data):
    return Config.from_dict({"data": data})


def test_a_requested_span_becomes_the_range_the_driver_resolves(tmp_path):
    _layout(tmp_path, [1, 2, 4])
    given = {"input_base": str(tmp_path), spans.REQUESTED_SPAN_KEY: 2, "x": "kept"}
    asked = spans.with_requested_span(given)
    assert json.loads(asked.pop(spans.RANGE_CONFIG_KEY)) == {
        "static_range": {"start_span_number": 2, "end_span_number": 2}}
    assert asked == given
    for newest in ({"input_base": str(tmp_path), spans.REQUESTED_SPAN_KEY: 0},
                   {"input_base": str(tmp_path)}):
        assert spans.with_requested_span(newest) is newest          # the driver takes span 4
    with pytest.raises(ValueError, match=r"has no span-3 directory \(spans: \[1, 2, 4\]\)"):
        spans.with_requested_span(dict(given, **{spans.REQUESTED_SPAN_KEY: 3}))
    with pytest.raises(ValueError, match="invalid span -1"):
        spans.with_requested_span(dict(given, **{spans.REQUESTED_SPAN_KEY: -1}))


def test_the_pipeline_reads_span_patterns_and_a_range_for_a_given_span(tmp_path):
    _layout(tmp_path, [1, 2])
    for n in (1, 2):
        for split in ("train", "eval"):
            os.makedirs(tmp_path / f"span-{n}" / split)
    input_config, _, options, range_config = split_configs(str(tmp_path), _config())
    assert [s.pattern for s in input_config.splits] == ["span-{SPAN}/train/*",
                                                        "span-{SPAN}/eval/*"]
    assert range_config is None and json.loads(options)["window_spans"] == 1
    _, _, _, range_config = split_configs(str(tmp_path), _config(window_spans=3), span=1)
    assert range_config.static_range.start_span_number == \
        range_config.static_range.end_span_number == 1
    with pytest.raises(ConfigError, match="has no span-7 directory"):
        split_configs(str(tmp_path), _config(), span=7)
    flat = tmp_path / "flat"
    os.makedirs(flat)
    with pytest.raises(ConfigError, match="not in the spans layout"):
        split_configs(str(flat), _config(), span=1)
    input_config, _, options, _ = split_configs("gs://bucket/logs", _config(layout="spans"))
    assert [s.pattern for s in input_config.splits] == ["span-{SPAN}/*"]     # hash: not probed
    assert json.loads(options)["window_spans"] == 1


def _resolved(data, config, span=None):
    """(input config, output config, options) with the span resolved as TFX's ExampleGen driver
    resolves it, and the exec property it sets."""
    input_config, output_config, options, range_config = split_configs(str(data), config, span)
    _, resolved_span, _ = example_gen_utils.calculate_splits_fingerprint_span_and_version(
        str(data), input_config.splits, range_config)
    return input_config, output_config or example_gen_pb2.Output(), options, resolved_span


@pytest.mark.parametrize("window, span, read", [(1, None, [3]), (2, None, [2, 3]),
                                                (5, 2, [1, 2]), (1, 1, [1])])
def test_example_gen_reads_the_window_of_spans_up_to_its_span(tmp_path, window, span, read):
    days = {n: many(150, sessions=40, seed=n) for n in (1, 2, 3)}
    for n, records in days.items():
        _write(str(tmp_path / "data" / f"span-{n}" / "part.gz"), records)
    input_config, output_config, options, resolved = _resolved(
        tmp_path / "data", _config(window_spans=window, split_key="seqnum"), span)
    assert resolved == (span or 3)
    splits = _run(tmp_path, input_config, output_config, options, span=resolved)
    assert sorted(splits) == ["eval", "train", "validation"]
    assert _serialized(sum(splits.values(), [])) == _serialized(
        sum((days[n] for n in read), []))


def test_given_splits_come_from_each_span_and_validation_where_it_exists(tmp_path):
    data = tmp_path / "data"
    given = {}
    for n in (1, 2):
        for split, count in (("train", 200), ("eval", 40)):
            given[n, split] = many(count, sessions=count // 4, seed=10 * n + count)
            _write(str(data / f"span-{n}" / split / "part.gz"), given[n, split])
    given[2, "validation"] = many(30, seed=99)
    _write(str(data / "span-2" / "validation" / "part.gz"), given[2, "validation"])
    input_config, output_config, options, resolved = _resolved(
        data, _config(window_spans=2, split_mode="given", validation_from="auto"))
    # the compiling machine probed span-2 (the newest): validation/ is read as given
    assert [s.name for s in input_config.splits] == ["train", "validation", "eval"]
    splits = _run(tmp_path, input_config, output_config, options, span=resolved)
    assert _serialized(splits["eval"]) == _serialized(given[1, "eval"] + given[2, "eval"])
    assert _serialized(splits["train"]) == _serialized(given[1, "train"] + given[2, "train"])
    assert _serialized(splits["validation"]) == _serialized(given[2, "validation"])
