"""`pipeline.local_runner`: schema snapshots that invalidate the cache, Beam dependency flags."""
import shutil

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from pipeline import local_runner
from pipeline.pipeline import SCHEMA_PATH


def _import_schema(layout, schema_path):
    """Run a pipeline of ImportSchemaGen alone (with caching); returns (state, schema text)."""
    from ml_metadata import metadata_store
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="schema-cache", pipeline_root=layout.pipeline_root,
        components=[tfx.components.ImportSchemaGen(
            schema_file=local_runner.schema_snapshot(layout, schema_path))],
        enable_cache=True, metadata_connection_config=layout.connection())
    tfx.orchestration.LocalDagRunner().run(pipeline)
    store = metadata_store.MetadataStore(layout.connection())
    execution = max(store.get_executions(), key=lambda e: e.id)
    (event,) = [e for e in store.get_events_by_execution_ids([execution.id])
                if e.type == metadata_store_pb2.Event.OUTPUT]
    (artifact,) = store.get_artifacts_by_id([event.artifact_id])
    with open(f"{artifact.uri}/schema.pbtxt", encoding="utf-8") as f:
        return execution.last_known_state, f.read()


def test_edited_schema_is_imported_again_and_unchanged_schema_is_cached(tmp_path):
    layout = local_runner.RunLayout(str(tmp_path / "root"))
    schema = tmp_path / "schema.pbtxt"
    shutil.copy(SCHEMA_PATH, schema)
    state, first = _import_schema(layout, str(schema))
    assert state == metadata_store_pb2.Execution.COMPLETE

    state, again = _import_schema(layout, str(schema))
    assert state == metadata_store_pb2.Execution.CACHED and again == first

    schema.write_text(schema.read_text() + '\nfeature { name: "extra" type: INT }\n')
    state, edited = _import_schema(layout, str(schema))
    assert state == metadata_store_pb2.Execution.COMPLETE
    assert 'name: "extra"' in edited and 'name: "extra"' not in first


def test_local_beam_args_name_this_project_unless_a_dependency_is_given():
    args = ["--direct_running_mode=in_memory"]
    assert local_runner.local_beam_args(args) == args + [f"--setup_file={local_runner.SETUP_FILE}"]
    assert args == ["--direct_running_mode=in_memory"]          # the caller's list is not changed
    given = args + ["--extra_package=/wheels/ours.tar.gz"]
    assert local_runner.local_beam_args(given) == given

