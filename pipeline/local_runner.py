"""Run the lt4rec pipeline on this machine with LocalDagRunner (MLMD in SQLite under the root).

Also the DSL file of the tfx CLI's local engine:

    tfx pipeline create --engine=local --pipeline_path=pipeline/local_runner.py
    tfx run create --engine=local --pipeline_name=lt4rec

reading LT4REC_CONFIG (config file), LT4REC_DATA (input directory; default: synthetic data) and
LT4REC_ROOT (default runs/tfx-cli) from the environment.
"""
import os
import shutil
import sys

if __name__ == "__main__" and sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(
        os.path.realpath(__file__)):
    # Run as a script (the tfx CLI does): this folder's pipeline.py must not shadow the package.
    sys.path[0] = os.path.dirname(sys.path[0])

from tfx import v1 as tfx

from pipeline import mlmd
from pipeline.config import Config
from pipeline.pipeline import create_pipeline


class RunLayout:
    """Where a run keeps its artifacts, metadata and pushed models, all under one root."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.pipeline_root = os.path.join(self.root, "pipeline")
        self.metadata_path = os.path.join(self.root, "metadata.sqlite")
        self.serving_dir = os.path.join(self.root, "serving")
        self.summary_path = os.path.join(self.root, "summary.json")

    def connection(self):
        """MLMD connection config of this run's SQLite store."""
        return mlmd.connection_config(self.metadata_path)


def default_data(root, config):
    """Generate (once) the default synthetic data set under the run root; returns its path."""
    from pipeline import synthetic_data
    rows, seed = config.data.synthetic_rows, config.data.synthetic_seed
    out = os.path.join(os.path.abspath(root), "data", f"synthetic-{rows}-seed{seed}")
    if not os.path.isdir(out):
        shutil.rmtree(out + ".partial", ignore_errors=True)
        synthetic_data.write_dataset(out + ".partial", rows=rows, seed=seed)
        os.replace(out + ".partial", out)
    return out


def run(data_root, root, config=None, enable_cache=True, beam_pipeline_args=None):
    """Run the whole pipeline on `data_root`; returns {node: {output: [artifact]}} from MLMD."""
    config = config or Config()
    layout = RunLayout(root)
    os.makedirs(layout.root, exist_ok=True)
    tfx.orchestration.LocalDagRunner().run(create_pipeline(
        pipeline_root=layout.pipeline_root, data_root=os.path.abspath(data_root),
        serving_dir=layout.serving_dir, config=config,
        metadata_connection_config=layout.connection(), enable_cache=enable_cache,
        beam_pipeline_args=beam_pipeline_args))
    return mlmd.latest_outputs(layout.connection(), config.pipeline_name)


if __name__ == "__main__":
    _config = Config.load(os.environ.get("LT4REC_CONFIG"))
    _root = os.environ.get("LT4REC_ROOT", "runs/tfx-cli")
    run(os.environ.get("LT4REC_DATA") or default_data(_root, _config), _root, _config)
