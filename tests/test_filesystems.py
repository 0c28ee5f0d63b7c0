"""s3:// and minio:// locations: detection, the minio mapping and its undoing for the launcher,
the S3 clients' environment, and the exit that keeps a process's status on S3."""
import json
import os
import subprocess
import sys
import textwrap

from conftest import s3_process_env
from kubeflow import entrypoint
from modules import filesystems

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_s3_and_minio_locations_are_recognised_anywhere_in_the_text():
    assert filesystems.uses_s3("gs://b/x", '{"input_base": "s3://b/data"}')
    assert filesystems.uses_s3("minio://mlpipeline/v2/artifacts")
    assert not filesystems.uses_s3("gs://b/x", "/local/s3/path", None)
    assert filesystems.minio_as_s3('{"uri": "minio://b/x", "y": "\\"minio://b/z"}') == \
        '{"uri": "s3://b/x", "y": "\\"s3://b/z"}'


def test_the_s3_environment_names_the_endpoint_for_both_clients():
    assert filesystems.s3_env("http://minio-service.kubeflow:9000", "eu-west-1") == {
        "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1",
        "S3_ENDPOINT": "http://minio-service.kubeflow:9000",
        "AWS_ENDPOINT_URL": "http://minio-service.kubeflow:9000", "S3_USE_HTTPS": "0"}
    assert filesystems.s3_env("https://s3.example.com")["S3_USE_HTTPS"] == "1"
    assert filesystems.s3_env() == {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}


def test_output_uris_go_back_to_the_minio_scheme_the_backend_gave(tmp_path):
    sent = {"outputs": {"artifacts": {
        "examples": {"artifacts": [{"uri": "minio://mlpipeline/v2/artifacts/run/eg/examples"}]},
        "stats": {"artifacts": [{"uri": "s3://other/stats"}]}}}}
    output_file = tmp_path / "output_metadata.json"
    output_file.write_text(json.dumps({"artifacts": {
        "examples": {"artifacts": [{"uri": "s3://mlpipeline/v2/artifacts/run/eg/examples",
                                    "metadata": {"span": 3}}]},
        "stats": {"artifacts": [{"uri": "s3://other/stats"}]}}}))
    entrypoint.restore_minio_uris(str(output_file), sent)
    written = json.loads(output_file.read_text())["artifacts"]
    assert written["examples"]["artifacts"][0] == {
        "uri": "minio://mlpipeline/v2/artifacts/run/eg/examples", "metadata": {"span": 3}}
    assert written["stats"]["artifacts"][0]["uri"] == "s3://other/stats"


_WRITE_THEN = textwrap.dedent("""
    import sys
    from modules import filesystems
    filesystems.register_s3()
    import tensorflow as tf
    with tf.io.gfile.GFile(sys.argv[1], "w") as f:
        f.write("written")
    assert tf.io.gfile.exists(sys.argv[1])
    how = sys.argv[2]
    if how == "skip":
        filesystems.exit_skipping_native_teardown(3)
    if how.startswith("at-exit"):          # as a Beam worker ends (modules/s3_worker_plugin.py)
        filesystems.skip_native_teardown_at_exit()
        if how == "at-exit-after-an-error":
            raise ValueError("an uncaught error")
    else:
        sys.exit(3)
""")


def test_a_process_that_used_s3_keeps_its_exit_status_only_by_skipping_native_teardown(
        s3_server):
    """tensorflow-io 0.37.1's S3 client aborts at interpreter exit (tensorflow/io#2039): a plain
    exit turns status 3 into 134 (SIGABRT). If this starts failing on the plain exit, a fixed
    tensorflow-io has arrived and the workaround can go. A process whose end is not ours (a
    Beam worker) ends with 0, or 1 after an uncaught error."""
    endpoint, client = s3_server
    client.create_bucket(Bucket="lt4rec-exit")
    env = s3_process_env(endpoint)
    codes = {}
    for how in ("skip", "plain", "at-exit", "at-exit-after-an-error"):
        done = subprocess.run([sys.executable, "-c", _WRITE_THEN, f"s3://lt4rec-exit/{how}.txt",
                               how], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300, check=False)
        codes[how] = done.returncode
        body = client.get_object(Bucket="lt4rec-exit", Key=f"{how}.txt")["Body"].read()
        assert body == b"written", (how, done.stderr[-2000:])
    assert codes == {"skip": 3, "plain": -6, "at-exit": 0, "at-exit-after-an-error": 1}


_BEAM_ON_S3 = textwrap.dedent("""
    import json, sys
    from modules import filesystems
    filesystems.register_s3()
    import apache_beam as beam
    import tensorflow as tf
    from apache_beam.options.pipeline_options import PipelineOptions
    base, plugins = sys.argv[1], json.loads(sys.argv[2])

    def write_beside(record, base):      # as Transform's analyzers and TFMA open files
        import tensorflow as tf
        with tf.io.gfile.GFile(f"{base}/side/{int(record) % 4}.txt", "w") as f:
            f.write(record.decode())
        return record

    with tf.io.TFRecordWriter(base + "/in.tfrecord") as writer:
        for i in range(40):
            writer.write(str(i).encode())
    options = PipelineOptions(["--direct_running_mode=multi_processing",
                               "--direct_num_workers=2"] + plugins)
    try:
        with beam.Pipeline(options=options) as pipeline:
            _ = (pipeline | beam.io.ReadFromTFRecord(base + "/in.tfrecord")
                 | beam.Map(write_beside, base) | beam.io.WriteToTFRecord(base + "/out/part"))
        print(json.dumps(sorted(tf.io.gfile.listdir(base + "/side"))))
        filesystems.exit_skipping_native_teardown(0)
    except Exception as error:
        print(error, file=sys.stderr)
        filesystems.exit_skipping_native_teardown(1)
""")


def test_beam_worker_processes_open_s3_through_tensorflow_only_with_the_worker_plugin(
        s3_server):
    """Beam's multi-processing workers (every Beam step in a pod) are fresh interpreters: a DoFn
    that opens s3:// through tf.io.gfile fails there unless `--beam_plugin` imports the
    filesystem (kubeflow/runner.py compiles it in); with it the workers also end cleanly."""
    from kubeflow import runner
    endpoint, client = s3_server
    client.create_bucket(Bucket="lt4rec-beam")
    env = s3_process_env(endpoint)
    done = {}
    for name, plugins in (("without", []),
                          ("with", [f"--beam_plugin={runner.S3_WORKER_PLUGIN}"])):
        done[name] = subprocess.run(
            [sys.executable, "-c", _BEAM_ON_S3, f"s3://lt4rec-beam/{name}", json.dumps(plugins)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done["without"].returncode == 1
    assert "File system scheme 's3' not implemented" in done["without"].stderr
    assert done["with"].returncode == 0, done["with"].stderr[-3000:]
    assert json.loads(done["with"].stdout.strip().splitlines()[-1]) == [
        "0.txt", "1.txt", "2.txt", "3.txt"]
    assert "Worker subprocess exited with return code" not in done["with"].stderr
