"""Imported by every Beam worker process on Kubeflow when a location is on S3
(`--beam_plugin=modules.s3_worker_plugin`, added by kubeflow/runner.py): DoFns that open files
through tf.io.gfile (Transform's analyzers, TFMA, tfx_bsl) find the s3:// scheme there too
(without it: "File system scheme 's3' not implemented"), and the worker ends without the S3
client's abort at exit (modules/filesystems.py)."""
from modules import filesystems

filesystems.register_s3()
filesystems.skip_native_teardown_at_exit()
