"""SplitExampleGen executor: ImportExampleGen's reading, our splitting (see component.py).

Hash mode: the output config's SplitConfig gives the splits and their hash buckets, as for
ImportExampleGen. The `split_options` property holds the hash key and, in given mode without a
validation directory, the share of the train records carved out as validation.
"""
import hashlib
import json
import os

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen.import_example_gen import executor as import_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

CARVE_BUCKETS = 1000     # resolution of the validation share carved out of train
SPLIT_OPTIONS_KEY = "split_options"


def split_options(split_key, carve_share=None, code_fingerprint=None, probe_validation=False):
    """SplitExampleGen's `split_options` (JSON): hash key ("" = whole record), carved share.

    `probe_validation` (given mode): at run time, read `<input_base>/validation/` as the
    validation split when it exists, else carve `carve_share` out of train; this is how
    `data.validation_from: auto` works on roots the compiling machine does not read (gs://, s3://).
    `code_fingerprint` only changes the property, so a code change is not served from the cache.
    """
    return json.dumps({"split_key": split_key, "carve_share": carve_share,
                       "code_fingerprint": code_fingerprint,
                       "probe_validation": probe_validation}, sort_keys=True)


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


def _bucket_partition(record, num_partitions, bounds, split_key):
    """Index of the split whose cumulative bucket bound first exceeds the record's bucket."""
    bucket = split_hash(record, split_key) % bounds[-1]
    return next(i for i, bound in enumerate(bounds) if bucket < bound)


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
        if output_config.split_config.splits:
            bounds = []
            for split in output_config.split_config.splits:
                bounds.append((bounds[-1] if bounds else 0) + split.hash_buckets)
            parts = (pipeline
                     | "InputToRecord" >> read(exec_properties, input_config.splits[0].pattern)
                     | "SplitData" >> beam.Partition(_bucket_partition, len(bounds), bounds, key))
            splits = {split.name: part
                      for split, part in zip(output_config.split_config.splits, parts)}
        else:
            patterns = {split.name: split.pattern for split in input_config.splits}
            if options.get("probe_validation") and tf.io.gfile.isdir(os.path.join(
                    exec_properties[standard_component_specs.INPUT_BASE_KEY], "validation")):
                patterns["validation"] = "validation/*"
            splits = {name: pipeline | f"InputToRecord[{name}]" >> read(exec_properties, pattern)
                      for name, pattern in patterns.items()}
            if options["carve_share"] and "validation" not in splits:
                bounds = [round(options["carve_share"] * CARVE_BUCKETS), CARVE_BUCKETS]
                validation, train = splits.pop("train") | "CarveValidation" >> beam.Partition(
                    _bucket_partition, 2, bounds, key)
                splits = {"train": train, "validation": validation, **splits}
        # Do() named the splits from the input/output configs; a carved split is not among them.
        self._examples.split_names = artifact_utils.encode_split_names(list(splits))
        return splits

    def Do(self, input_dict, output_dict, exec_properties):
        self._examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY])
        super().Do(input_dict, output_dict, exec_properties)
