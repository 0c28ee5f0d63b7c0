"""Run the lt4rec pipeline on this machine with LocalDagRunner (MLMD in SQLite under the root).

Also the DSL file of the tfx CLI's local engine:

    tfx pipeline create --engine=local --pipeline_path=pipeline/local_runner.py
    tfx run create --engine=local --pipeline_name=lt4rec

reading LT4REC_CONFIG (config file), LT4REC_DATA (input directory; default: synthetic data) and
LT4REC_ROOT (default runs/tfx-cli) from the environment.
"""
import hashlib
import os
import shutil
import sys

if __name__ == "__main__" and sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(
        os.path.realpath(__file__)):
    # Run as a script (the tfx CLI does): this folder's pipeline.py must not shadow the package.
    sys.path[0] = os.path.dirname(sys.path[0])

from tfx import v1 as tfx
from tfx.orchestration import pipeline as tfx_pipeline

from pipeline import mlmd
from modules.config import Config
from pipeline.pipeline import NEVER_CACHED, SCHEMA_PATH, create_pipeline


SETUP_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")
# Beam flags that tell TFX where the workers' Python dependencies come from.
_DEPENDENCY_FLAGS = ("--extra_package", "--setup_file", "--requirements_file",
                     "--worker_harness_container_image", "--sdk_container_image")


class RunLayout:
    """Where a run keeps its artifacts, metadata and pushed models, all under one root."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.pipeline_root = os.path.join(self.root, "pipeline")
        self.metadata_path = os.path.join(self.root, "metadata.sqlite")
        self.serving_dir = os.path.join(self.root, "serving")
        self.statistics_dir = os.path.join(self.root, "statistics")
        self.summary_path = os.path.join(self.root, "summary.json")
        self.schema_dir = os.path.join(self.root, "schema")

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


def schema_snapshot(layout, schema_path=SCHEMA_PATH):
    """Copy the schema to `<root>/schema/<content sha256>/schema.pbtxt`; returns the copy's path.

    ImportSchemaGen caches by its `schema_file` path, so an edited schema at the same path would
    reuse the old import. A content-addressed copy makes an edit a new input: the next run
    re-imports it and re-runs everything that reads the schema.
    """
    with open(schema_path, "rb") as f:
        content = f.read()
    folder = os.path.join(layout.schema_dir, hashlib.sha256(content).hexdigest()[:16])
    path = os.path.join(folder, os.path.basename(schema_path))
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        with open(path + ".partial", "wb") as f:
            f.write(content)
        os.replace(path + ".partial", path)
    return path


def local_beam_args(args):
    """`args` plus `--setup_file=<this project's setup.py>` unless they name a dependency already.

    Without a dependency flag every TFX Beam component repackages the whole TFX install into a
    new /tmp directory (~50 MB per component and run, never removed) for remote Beam workers;
    the local DirectRunner never reads it. Remote runners get this project's package instead.
    """
    if not os.path.exists(SETUP_FILE) or any(
            arg.startswith(_DEPENDENCY_FLAGS) for arg in args):
        return list(args)
    return list(args) + [f"--setup_file={SETUP_FILE}"]


class LocalRunner(tfx.orchestration.LocalDagRunner):
    """LocalDagRunner that never serves the `NEVER_CACHED` nodes from MLMD's cache."""

    def run_with_ir(self, pipeline, run_options=None, **kwargs):
        for node in pipeline.nodes:
            if node.pipeline_node.node_info.id in NEVER_CACHED:
                node.pipeline_node.execution_options.caching_options.enable_cache = False
        return super().run_with_ir(pipeline, run_options=run_options, **kwargs)


def run(data_root, root, config=None, enable_cache=True, beam_pipeline_args=None,
        schema_path=SCHEMA_PATH, until=None, span=None):
    """Run the pipeline on `data_root` (its newest span in the spans layout, or `span`; the whole
    pipeline, or with `until` a node id only that node and what it needs, e.g. "Transform");
    returns {node: {output: [artifact]}} from MLMD."""
    config = config or Config()
    layout = RunLayout(root)
    os.makedirs(layout.root, exist_ok=True)
    LocalRunner().run(create_pipeline(
        pipeline_root=layout.pipeline_root, data_root=os.path.abspath(data_root),
        serving_dir=layout.serving_dir, config=config,
        metadata_connection_config=layout.connection(), enable_cache=enable_cache,
        beam_pipeline_args=local_beam_args(beam_pipeline_args if beam_pipeline_args is not None
                                           else config.beam_pipeline_args),
        schema_path=schema_snapshot(layout, schema_path), span=span,
        statistics_dir=layout.statistics_dir),
        run_options=tfx_pipeline.RunOptions(to_nodes=[until]) if until else None)
    return mlmd.latest_outputs(layout.connection(), config.pipeline_name)


if __name__ == "__main__":
    _config = Config.load(os.environ.get("LT4REC_CONFIG"))
    _root = os.environ.get("LT4REC_ROOT", "runs/tfx-cli")
    run(os.environ.get("LT4REC_DATA") or default_data(_root, _config), _root, _config)
