"""SplitExampleGen executor: ImportExampleGen's reading, our splitting (see component.py).

Hash mode: the output config's SplitConfig gives the splits and their hash buckets, as for
ImportExampleGen. The `split_options` property holds the hash key and, in given mode without a
validation directory, the share of the train records carved out as validation.

Small data: with `sizing`, validation grows (taking records from train, by the same hash) until
each task's rarer class is expected to hold `min_class_rows` validation rows, up to `max_share`,
so early stopping and ticket rounds are chosen on enough positives and negatives.
"""
import hashlib
import json
import os

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx.components.example_gen.import_example_gen import executor as import_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.split_example_gen import row_checks, spans
from modules import rules as rules_lib

CARVE_BUCKETS = 1000     # resolution of the validation share carved out of train
GROW_RESOLUTION = 10 ** 6  # resolution of the share of train records moved to a grown validation
SPLIT_OPTIONS_KEY = "split_options"
ROW_CHECKS_DIR = "row_checks"     # per read: rows read and dropped per reason (JSON)


def split_options(split_key, carve_share=None, code_fingerprint=None, probe_validation=False,
                  sizing=None, window_spans=None, row_checks=None):
    """SplitExampleGen's `split_options` (JSON): hash key ("" = whole record), carved share.

    `probe_validation` (given mode): at run time, read `<input_base>/validation/` as the
    validation split when it exists, else carve `carve_share` out of train; this is how
    `data.validation_from: auto` works on roots the compiling machine does not read (gs://, s3://).
    `sizing` (a hashed or carved validation only): {"min_class_rows", "max_share", "rules"}, the
    rules as `task_classes` reads them. `code_fingerprint` only changes the property, so a code
    change is not served from the cache. `window_spans` (spans layout): each split is read from
    the newest that many spans up to the run's span. `row_checks` ({"schema": path,
    "max_dropped_fraction": share}): records failing the schema's row checks (`row_checks.py`)
    are dropped and counted; above that share of a read the run fails.
    """
    return json.dumps({"split_key": split_key, "carve_share": carve_share,
                       "code_fingerprint": code_fingerprint,
                       "probe_validation": probe_validation, "sizing": sizing,
                       "window_spans": window_spans, "row_checks": row_checks}, sort_keys=True)


def split_hash(example, split_key):
    """sha256 (as an integer) of a tf.Example, or of its `split_key` feature, as TFX hashes."""
    if not split_key:
        return int(hashlib.sha256(example.SerializeToString(deterministic=True)).hexdigest(), 16)
    feature = example.features.feature
    kind = feature[split_key].WhichOneof("kind") if split_key in feature else None
    if not kind or not getattr(feature[split_key], kind).value:
        raise ValueError(f"data.split_key: feature '{split_key}' is missing from a record; "
                         f"every record needs a value to be assigned to a split")
    return int(hashlib.sha256(feature[split_key].SerializeToString(
        deterministic=True)).hexdigest(), 16)


def _bucket_partition(record, num_partitions, bounds, split_key, grow=None):
    """Index of the split whose cumulative bucket bound first exceeds the record's bucket.

    `grow` = (donor, receiver, fraction): that fraction of the donor split's records, chosen by
    the hash's higher digits, go to the receiver instead (0: the split as TFX makes it).
    """
    digest = split_hash(record, split_key)
    index = next(i for i, bound in enumerate(bounds) if digest % bounds[-1] < bound)
    if grow and index == grow[0] and \
            (digest // bounds[-1]) % GROW_RESOLUTION < grow[2] * GROW_RESOLUTION:
        return grow[1]
    return index


def _number(feature):
    """The first value of a numeric feature; None when it is empty or not a number."""
    kind = feature.WhichOneof("kind")
    values = getattr(feature, kind).value if kind in ("int64_list", "float_list") else []
    return values[0] if len(values) else None


def task_classes(record, rules):
    """(task, 0/1) for every task whose rows hold this record: a rule {"task", "positive", "rows"}
    holds rule texts (`modules.rules`); the record is in the task's rows where `rows` holds (or
    is empty), and in class 1 where `positive` holds. Records missing a column a rule reads, or
    holding a non-number there, count for no class (the data validator refuses them later,
    naming the feature)."""
    feature = record.features.feature
    found = []
    for rule in rules:
        label = rules_lib.parse(rule["positive"])
        rows = rules_lib.parse(rule["rows"]) if rule["rows"] else None
        read = rules_lib.columns(label) + (rules_lib.columns(rows) if rows else [])
        values = {c: _number(feature[c]) if c in feature else None for c in read}
        if any(value is None for value in values.values()):
            continue
        if rows is None or rules_lib.holds(rows, values, rules_lib.NUMPY):
            found.append((rule["task"], int(rules_lib.holds(label, values, rules_lib.NUMPY))))
    return found


def grown_share(counts, base, sizing):
    """The validation share (of the records counted) that gives each task's rarer class
    `min_class_rows` expected validation rows: at least `base`, at most `max_share` (warned)."""
    tasks = [rule["task"] for rule in sizing["rules"]]
    rarer = {t: min(counts.get((t, 0), 0), counts.get((t, 1), 0)) for t in tasks}
    wanted = max([base] + [sizing["min_class_rows"] / max(rarer[t], 1) for t in tasks])
    share = min(wanted, max(base, sizing["max_share"]))
    if share < wanted:
        logging.warning(
            "validation holds fewer than data.validation_min_class_rows=%d rows of some task's "
            "rarer class even at data.validation_max_share=%.2f (rarer-class rows per task in "
            "the data it is taken from: %s); choices made on validation will be noisy (more "
            "data helps; or lower data.validation_min_class_rows to stop the growth earlier)",
            sizing["min_class_rows"], share, rarer)
    logging.info("validation share %.4f (base %.4f; rarer-class rows per task: %s)",
                 share, base, rarer)
    return share


def _sized(records, base, donor_share, donor, receiver, sizing, label):
    """Side input: the `grow` of `_bucket_partition` that brings validation to `grown_share`.

    `records` should be a read of its own: a side input computed from the PCollection being
    partitioned makes the runner hold every record until it is ready (the whole day in memory),
    and Beam 2.59's multi-processing DirectRunner then lost 17-21% of a 4.2M-row day's records.
    """
    def grow(counts):
        share = grown_share(dict(counts), base, sizing)
        return donor, receiver, (share - base) / donor_share
    return beam.pvalue.AsSingleton(
        records
        | f"TaskClasses[{label}]" >> beam.FlatMap(task_classes, sizing["rules"])
        | f"CountClasses[{label}]" >> beam.combiners.Count.PerElement()
        | f"ToList[{label}]" >> beam.combiners.ToList()
        | f"Grow[{label}]" >> beam.Map(grow))


def _same_count(read, *held, names, source):
    """Raises unless the splits hold every record read (a runner that lost some)."""
    if sum(held) != read:
        raise RuntimeError(
            f"ExampleGen read {read} records from {source} but its splits hold {sum(held)} "
            f"({dict(zip(names, held))}): the Beam runner lost records; nothing is published. "
            f"Rerun; if it repeats, run ExampleGen with another runner or fewer records "
            f"per run (beam_pipeline_args)")
    return read


def check_counts(records, parts, names, source, label):
    """A branch that fails the run (naming `source`) unless the `parts` of `records` hold as
    many records as were read. It gates nothing: a failed run publishes no examples."""
    count = f"Count[{label}]"
    held = [beam.pvalue.AsSingleton(part | f"{count}[{name}]" >> beam.combiners.Count.Globally())
            for name, part in zip(names, parts)]
    return (records
            | f"{count}[read]" >> beam.combiners.Count.Globally()
            | f"SameCount[{label}]" >> beam.Map(_same_count, *held, names=names, source=source))


def read_window(pipeline, read, exec_properties, pattern, window, label, optional=False):
    """The records of split pattern `pattern`, or with `window` (span numbers) of that pattern
    in each of those spans, as one PCollection. A span without files for it is refused, naming
    the pattern, or with `optional` skipped."""
    if not window:
        return pipeline | f"InputToRecord{label}" >> read(exec_properties, pattern)
    base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    parts = []
    for n in window:
        where = spans.in_span(pattern, n)
        if not tf.io.gfile.glob(os.path.join(base, where)):
            if optional:
                continue
            raise ValueError(f"invalid input: {os.path.join(base, where)} matches no file "
                             f"(span {n} of the window {window}; data.window_spans)")
        parts.append(pipeline | f"InputToRecord{label}[span-{n}]" >> read(exec_properties, where))
    return parts | f"Spans{label}" >> beam.Flatten()


def _flag(record, checks):
    return record, row_checks.problem(record, checks)


def checked(records, checks, label, counts_path, source):
    """`records` without those failing `checks`; the rows read and dropped per reason are
    written to `counts_path` (`row_checks.write_counts`, naming `source`)."""
    flagged = records | f"RowChecks{label}" >> beam.Map(_flag, checks)
    _ = (flagged
         | f"Reasons{label}" >> beam.Map(lambda pair: pair[1])
         | f"CountReasons{label}" >> beam.combiners.Count.PerElement()
         | f"ReasonList{label}" >> beam.combiners.ToList()
         | f"WriteCounts{label}" >> beam.Map(
             lambda counts: row_checks.write_counts(counts_path, source, counts)))
    return (flagged
            | f"Passing{label}" >> beam.Filter(lambda pair: pair[1] is None)
            | f"Records{label}" >> beam.Map(lambda pair: pair[0]))


class Executor(import_executor.Executor):
    """Reads like ImportExampleGen; splits by `split_options` into train/validation/eval."""

    def GenerateExamplesByBeam(self, pipeline, exec_properties):
        options = json.loads(exec_properties[SPLIT_OPTIONS_KEY])
        input_config, output_config = example_gen_pb2.Input(), example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                                  input_config)
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY],
                                  output_config)
        read = self.GetInputSourceToExamplePTransform()
        key = options["split_key"]
        base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        window = spans.window(base, int(exec_properties["span"]), options["window_spans"]) \
            if options.get("window_spans") else None
        if window:
            logging.info("reading spans %s of %s", window, base)

        def source(pattern):
            where = os.path.join(base, pattern)
            return f"{where} (spans {window})" if window else where

        checks = options.get("row_checks")
        rules = row_checks.read_checks(checks["schema"]) if checks else None
        counts_dir = os.path.join(self._examples.uri, ROW_CHECKS_DIR)

        def records_of(pattern, label, optional=False, check=True):
            """The records of `pattern`; with `check`, those passing the row checks (counted).
            The sizing reads skip them: class shares within the tolerated bad rows are close
            enough, and the checks are ExampleGen's main per-record cost."""
            records = read_window(pipeline, read, exec_properties, pattern, window, label,
                                  optional)
            if rules is None or not check:
                return records
            name = "".join(c for c in label if c.isalnum() or c in "-_") or "all"
            return checked(records, rules, label, os.path.join(
                counts_dir, f"{name}.json"), source(pattern))

        if output_config.split_config.splits:
            names = [split.name for split in output_config.split_config.splits]
            bounds = []
            for split in output_config.split_config.splits:
                bounds.append((bounds[-1] if bounds else 0) + split.hash_buckets)
            pattern = input_config.splits[0].pattern
            records = records_of(pattern, "")
            grow = None
            if options.get("sizing") and {"train", "validation"} <= set(names):
                train, validation = names.index("train"), names.index("validation")
                width = [b - (bounds[i - 1] if i else 0) for i, b in enumerate(bounds)]
                grow = _sized(records_of(pattern, "[sizing]", check=False),
                              width[validation] / bounds[-1], width[train] / bounds[-1], train,
                              validation, options["sizing"], "all")
            parts = records | "SplitData" >> beam.Partition(
                _bucket_partition, len(bounds), bounds, key, grow)
            check_counts(records, parts, names, source(pattern), "all")
            splits = dict(zip(names, parts))
        else:
            patterns = {split.name: split.pattern for split in input_config.splits}
            # beside train/: <base>/validation/ or <base>/span-<N>/validation/
            validation = os.path.join(os.path.dirname(os.path.dirname(patterns["train"])),
                                      "validation")
            if options.get("probe_validation") and tf.io.gfile.isdir(
                    os.path.join(base, validation)):
                patterns["validation"] = validation + "/*"
            # a window's older spans may lack validation/ (it is taken where it exists)
            splits = {name: records_of(pattern, f"[{name}]", optional=name == "validation")
                      for name, pattern in patterns.items()}
            if options["carve_share"] and "validation" not in splits:
                bounds = [round(options["carve_share"] * CARVE_BUCKETS), CARVE_BUCKETS]
                records = splits.pop("train")
                grow = _sized(
                    records_of(patterns["train"], "[train][sizing]", check=False),
                    bounds[0] / CARVE_BUCKETS, 1 - bounds[0] / CARVE_BUCKETS, 1, 0,
                    options["sizing"], "train") if options.get("sizing") else None
                validation, train = records | "CarveValidation" >> beam.Partition(
                    _bucket_partition, 2, bounds, key, grow)
                check_counts(records, [validation, train], ["validation", "train"],
                             source(patterns["train"]), "train")
                splits = {"train": train, "validation": validation, **splits}
        # Do() named the splits from the input/output configs; a carved split is not among them.
        self._examples.split_names = artifact_utils.encode_split_names(list(splits))
        return splits

    def Do(self, input_dict, output_dict, exec_properties):
        self._examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY])
        super().Do(input_dict, output_dict, exec_properties)
        checks = json.loads(exec_properties[SPLIT_OPTIONS_KEY]).get("row_checks")
        if checks:
            self._judge_rows(checks["max_dropped_fraction"])

    def _judge_rows(self, tolerance):
        """Fail when a read dropped more than `tolerance` of its records; else record the rows
        read and dropped per reason on the examples (`rows_read`, `dropped_rows` as JSON) and
        warn about the drops."""
        reports = row_checks.read_counts(os.path.join(self._examples.uri, ROW_CHECKS_DIR))
        for report in reports.values():
            row_checks.verdict(report["rows_read"], report["dropped_rows"], report["source"],
                               tolerance)
        read, dropped = row_checks.merge(reports.values())
        self._examples.set_int_custom_property("rows_read", read)
        self._examples.set_string_custom_property("dropped_rows", json.dumps(dropped,
                                                                             sort_keys=True))
        for reason, rows in sorted(dropped.items()):
            logging.warning("ExampleGen dropped %d of %d records (%s): %s (at most "
                            "checks.max_dropped_fraction=%g of a split's records may be)",
                            rows, read, f"{rows / read:.2%}", reason, tolerance)
