"""The spans layout of daily data: `<data>/span-<N>/...` (N = 1, 2, ... without leading zeros,
as TFX's `{SPAN}` spec writes it), a run's span and the window of spans it reads."""
import os
import re

import tensorflow as tf
from tfx.proto import range_config_pb2
from tfx.utils import proto_utils

SPAN_DIR = "span-{SPAN}"          # the span directory in ExampleGen's split patterns
REQUESTED_SPAN_KEY = "requested_span"     # ExampleGen's execution parameter (0: the newest)
RANGE_CONFIG_KEY = "range_config"
_SPAN_NAME = re.compile(r"^span-([1-9][0-9]*)$")


def span_directories(data_root):
    """{span number: directory name} of the `span-<N>` directories directly under `data_root`."""
    if not tf.io.gfile.isdir(data_root):
        return {}
    found = {}
    for name in tf.io.gfile.listdir(data_root):
        name = name.rstrip("/")
        match = _SPAN_NAME.match(name)
        if match and tf.io.gfile.isdir(os.path.join(data_root, name)):
            found[int(match.group(1))] = name
    return found


def newest(data_root):
    """The newest span number under `data_root`; ValueError naming it when it holds none."""
    found = span_directories(data_root)
    if not found:
        raise ValueError(f"invalid input: {data_root!r} holds no span-<N> directory")
    return max(found)


def window(data_root, span, size):
    """The newest `size` span numbers up to `span` under `data_root`, oldest first (fewer when
    fewer exist); ValueError naming the root when `span` is not there."""
    found = span_directories(data_root)
    if span not in found:
        raise ValueError(f"invalid input: {data_root!r} has no span-{span} directory (spans: "
                         f"{sorted(found) or 'none'})")
    return sorted(n for n in found if n <= span)[-size:]


def range_config(span):
    """ExampleGen's RangeConfig reading span `span` (the driver resolves nothing else)."""
    return range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
        start_span_number=span, end_span_number=span))


def with_requested_span(parameters):
    """ExampleGen's execution parameters (`parameters`: name -> value) with a positive
    `requested_span` turned into the range config TFX's driver resolves; unchanged for 0 or
    none (the driver takes the newest span). ValueError for a negative span, or one the input
    base (`input_base`) does not hold, naming the spans it holds."""
    span = int(parameters.get(REQUESTED_SPAN_KEY) or 0)
    if span < 0:
        raise ValueError(f"invalid span {span}: a span number (>= 1), or 0 for the newest")
    if not span:
        return parameters
    window(parameters["input_base"], span, 1)
    return dict(parameters, **{RANGE_CONFIG_KEY: proto_utils.proto_to_json(range_config(span))})


def in_span(pattern, span):
    """`pattern` (a split pattern under a span directory, its span given or resolved) moved to
    span `span`: "span-7/train/*" -> "span-5/train/*"."""
    first, _, rest = pattern.partition("/")
    if not (first == SPAN_DIR or _SPAN_NAME.match(first)):
        raise ValueError(f"split pattern {pattern!r} does not start with a span directory")
    return f"span-{span}/{rest}"


def span_of(examples):
    """The span an Examples artifact (TFX's, or its MLMD record) holds, as TFX's ExampleGen
    driver records it; None without spans (recorded as 0)."""
    record = getattr(examples, "mlmd_artifact", examples)
    for values in (record.properties, record.custom_properties) if record is not None else ():
        if "span" in values:
            return values["span"].int_value or None
    return None
