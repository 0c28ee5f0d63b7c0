"""Run the lt4rec pipeline on this machine with LocalDagRunner (MLMD in SQLite under the root)."""
import os

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
