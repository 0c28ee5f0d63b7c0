"""AtomicPusher: TFX's Pusher (same inputs, outputs and blessing check) with an atomic push."""
from tfx.components import Pusher
from tfx.dsl.components.base import executor_spec

from components.atomic_pusher import executor


class AtomicPusher(Pusher):
    """Pusher that never leaves a half-written version directory for TF Serving to load."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
