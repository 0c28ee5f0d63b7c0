"""The model server pod's init container: copy the candidate SavedModel from the artifact store
to the pod's own volume, where TF Serving loads it.

    python -m components.infra_validator.stage_model <model dir URI> <local version dir>

The URI may be gs://, s3://, minio:// (KFP's MinIO, read as s3://) or a local path: this runs
our image, whose TensorFlow reads them all, so the stock TF Serving image needs no object-store
support of its own (releases since 2.7 read no s3://, tensorflow/serving issue 1963).
"""
import sys

from absl import logging
from tfx.dsl.io import fileio
from tfx.utils import io_utils

from modules import filesystems


def stage(source, destination):
    """Copy the directory `source` to `destination`; returns the files copied. ValueError naming
    `source` when it holds no saved_model.pb."""
    if filesystems.uses_s3(source):
        filesystems.register_s3()
        source = filesystems.minio_as_s3(source)
    if not fileio.exists(f"{source.rstrip('/')}/saved_model.pb"):
        raise ValueError(f"no SavedModel to stage: {source}/saved_model.pb does not exist")
    io_utils.copy_dir(source, destination)
    return sum(len(files) for _, _, files in fileio.walk(destination))


def main(argv):
    """Stage argv[0] into argv[1]; exit status 0 or 1 (the model server pod does not start)."""
    logging.set_verbosity(logging.INFO)
    if len(argv) != 2:
        sys.exit("usage: python -m components.infra_validator.stage_model <model dir URI> "
                 "<local version dir>")
    source, destination = argv
    try:
        logging.info("staged %d files of %s into %s", stage(source, destination), source,
                     destination)
        code = 0
    except Exception:  # pylint: disable=broad-except
        logging.exception("staging %s failed", source)
        code = 1
    if filesystems.uses_s3(source):
        filesystems.exit_skipping_native_teardown(code)    # tensorflow/io#2039
    sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
