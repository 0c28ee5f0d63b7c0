"""Progress of the long steps, for the console: `lt4rec run` shows the latest report on the
running step's line (`pipeline/console.py`); the run's log gets every one.
"""
import contextlib
import logging

LOGGER = logging.getLogger("lt4rec.progress")
_stages = []


@contextlib.contextmanager
def stage(text):
    """Prefix every report made inside with `text` (e.g. "ctr round 2/4")."""
    _stages.append(text)
    try:
        yield
    finally:
        _stages.pop()


def report(text):
    """Log one progress event, after the open stages: "ctr round 2/4 · epoch 3: ..."."""
    LOGGER.info(" · ".join(_stages + [text]), stacklevel=2)
