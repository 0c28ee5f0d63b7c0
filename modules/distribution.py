"""The one tf.distribute strategy helper both trainers use."""
import tensorflow as tf


def make_strategy(devices=None):
    """MirroredStrategy over `devices`, else over all visible GPUs, else the default strategy.

    The default strategy runs the same `strategy.run` code on one CPU/GPU; two logical CPU devices
    (`tf.config.set_logical_device_configuration`) exercise the multi-replica path without a GPU.
    """
    if devices:
        return tf.distribute.MirroredStrategy(devices=list(devices))
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy(devices=[gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()
