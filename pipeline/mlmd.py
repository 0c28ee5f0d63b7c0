"""Read a pipeline run's outputs back from ML Metadata."""
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

_DONE = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)


def connection_config(sqlite_path):
    """MLMD connection config for a SQLite file (created if missing)."""
    return metadata.sqlite_metadata_connection_config(sqlite_path)


def latest_outputs(connection, pipeline_name):
    """{node id: {output key: [artifact]}} of each node's latest successful execution."""
    store = metadata_store.MetadataStore(connection)
    outputs = {}
    for context in store.get_contexts_by_type("node"):
        prefix = pipeline_name + "."
        if not context.name.startswith(prefix):
            continue
        executions = [e for e in store.get_executions_by_context(context.id)
                      if e.last_known_state in _DONE]
        if not executions:
            continue
        latest = max(executions, key=lambda e: (e.create_time_since_epoch, e.id))
        outputs[context.name[len(prefix):]] = _outputs_of(store, latest.id)
    return outputs


def _outputs_of(store, execution_id):
    events = [e for e in store.get_events_by_execution_ids([execution_id])
              if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    by_key = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        by_key.setdefault(key, []).append(artifacts[event.artifact_id])
    return by_key
