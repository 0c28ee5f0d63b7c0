"""Object-store locations on S3-compatible stores (s3://, and KFP's minio:// mapped to it).

TensorFlow 2.16 opens gs:// itself but has no s3:// filesystem of its own: tensorflow-io 0.37.1's
filesystem plugin (built for TF 2.16) provides it to tf.io.gfile, and so to TFX's `fileio`, in
every process that imports tensorflow-io (TFT imports it whenever it is installed).
Beam's reads and writes (ExampleGen, StatisticsGen, Transform, TFMA) go through Beam's own
s3:// filesystem (apache_beam.io.aws, boto3). Both read their settings from the environment,
the way Kubeflow configures pods: `s3_env` names the variables.

tensorflow-io 0.37.1 with TF 2.16 aborts at interpreter exit once an S3 client exists ("pure
virtual method called", exit status 134: the AWS SDK's static teardown, tensorflow/io#2039,
fixed upstream after the last release for TF 2.16), after all work is done and flushed. A
process that registered the plugin therefore ends with `exit_skipping_native_teardown`, or,
when its end is not ours to write (a Beam worker), `skip_native_teardown_at_exit`.
"""
import atexit
import importlib
import logging
import os
import sys

S3_SCHEMES = ("s3://", "minio://")


def uses_s3(*texts):
    """True if any of `texts` (URIs, or text holding them) names an s3:// or minio:// location."""
    return any(scheme in (text or "") for text in texts for scheme in S3_SCHEMES)


def minio_as_s3(text):
    """`text` with every minio:// location written as s3:// (KFP's MinIO speaks S3; TensorFlow
    and Beam know the s3:// scheme only)."""
    return text.replace("minio://", "s3://")


def register_s3():
    """Give TensorFlow's file system (tf.io.gfile, TFX fileio, SavedModel I/O) the s3:// scheme:
    importing tensorflow-io registers its filesystem plugins, once per process (TFT's own
    `__init__` imports it too, "wherever we touch the filesystem")."""
    try:
        importlib.import_module("tensorflow_io")
    except ModuleNotFoundError as error:
        raise RuntimeError("s3:// locations need tensorflow-io (requirements/lock.txt pins "
                           "0.37.1)") from error


def s3_env(endpoint="", region="us-east-1"):
    """The environment that points tensorflow-io's and boto3's S3 clients at `endpoint` (an
    http(s):// URL of an S3-compatible server such as KFP's MinIO; empty: AWS itself)."""
    env = {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}
    if endpoint:
        env.update(S3_ENDPOINT=endpoint, AWS_ENDPOINT_URL=endpoint,
                   S3_USE_HTTPS="0" if endpoint.startswith("http://") else "1")
    return env


def exit_skipping_native_teardown(code):
    """Flush Python's logging and standard streams, then end the process with `code` without
    running native static destructors (where tensorflow-io's S3 client aborts)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)  # pylint: disable=protected-access


def skip_native_teardown_at_exit():
    """End this process, when the interpreter exits, through `exit_skipping_native_teardown`:
    status 0, or 1 after an uncaught exception (for processes whose exit code is not ours to
    write, such as Beam's worker processes)."""
    failed = []
    previous_hook = sys.excepthook

    def record_failure(*exc_info):
        failed.append(exc_info[0])
        previous_hook(*exc_info)
    sys.excepthook = record_failure
    atexit.register(lambda: exit_skipping_native_teardown(1 if failed else 0))
