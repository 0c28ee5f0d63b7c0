"""The installed package imports where the pipeline's code runs: outside the repository and in
a Beam multi-processing worker (how Transform and ExampleGen workers load our modules)."""
import operator
import subprocess
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

GROUND_CHECK = ("from modules.config import Config; from modules import features; "
                "print(Config().data.split_key, features.PAD_ID)")


def test_the_ground_imports_from_outside_the_repository(tmp_path):
    done = subprocess.run([sys.executable, "-c", GROUND_CHECK], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["seqnum", "-1"]


def test_the_ground_imports_in_a_beam_multi_processing_worker():
    """The worker unpickles `Config.from_json` by reference, so it imports `modules.config`."""
    from modules.config import Config
    options = PipelineOptions(["--direct_running_mode=multi_processing",
                               "--direct_num_workers=1"])
    with beam.Pipeline(options=options) as pipeline:
        configs = pipeline | beam.Create([Config().to_json()]) | beam.Map(Config.from_json)
        assert_that(configs | beam.Map(operator.attrgetter("data.split_key")),
                    equal_to(["seqnum"]))
