"""The quiet console of `lt4rec run`.

The console gets one line per pipeline step with its duration (a TTY also shows the running
step's latest progress as it goes: ticket search's task and round, training's epoch and
validation AUC), this project's warnings and errors in full, then the summary. Everything else
(TFX, Beam, TensorFlow, their subprocesses and C++ logging) goes to the run's log file,
`<root>/logs/run-<time>.log`; `lt4rec run -v` keeps it all on the console instead.
"""
import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import time

from modules import progress

RUNNING = re.compile(r"^Component (\S+) is running\.$")       # TFX's LocalDagRunner
FINISHED = re.compile(r"^Component (\S+) is finished\.$")
CACHED = re.compile(r"^A cached execution \d+ is used\.$")    # TFX's launcher
_PROJECT = tuple(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), d)
                 + os.sep for d in ("components", "modules", "pipeline", "kubeflow"))
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(filename)s:%(lineno)d] %(message)s"
PROGRESS_EVERY_SECONDS = 60   # off a TTY: a running step's progress at most this often


def log_path(root):
    """A new log file name for a run under `root`: `<root>/logs/run-<UTC time>.log`."""
    return os.path.join(os.path.abspath(root), "logs",
                        time.strftime("run-%Y%m%d-%H%M%S.log", time.gmtime()))


def ours(record):
    """Whether a log record comes from this project's code (not a library's)."""
    return os.path.abspath(record.pathname).startswith(_PROJECT)


class StepLines(logging.Handler):
    """Turns the runner's log records into one console line per step (see the module doc)."""

    def __init__(self, stream, tty=False, clock=time.monotonic):
        super().__init__(logging.INFO)
        self.stream, self.tty, self.clock = stream, tty, clock
        self.node, self.started, self.cached, self.latest, self.shown = None, 0.0, False, "", 0.0

    def emit(self, record):
        message = record.getMessage()
        running, finished = RUNNING.match(message), FINISHED.match(message)
        if running:
            if self.node:        # a step whose end was not logged
                self._show(self._step_line(), final=True)
            self.node, self.started, self.cached, self.latest = running.group(1), self.clock(), \
                False, ""
            self.shown = self.started
            self._show(f"{self.node} ...", final=False)
        elif finished and self.node:
            self._show(self._step_line("cached" if self.cached else self.latest), final=True)
            self.node = None
        elif CACHED.match(message):
            self.cached = True
        elif record.name == progress.LOGGER.name and self.node:
            self.latest = message
            if self.tty or self.clock() - self.shown >= PROGRESS_EVERY_SECONDS:
                self.shown = self.clock()
                self._show(self._step_line(message), final=not self.tty)
        elif record.levelno >= logging.WARNING and ours(record):
            self._show(f"{record.levelname}: {message}", final=True)
            if self.node and self.tty:
                self._show(f"{self.node} ...   {self.latest}", final=False)

    def _step_line(self, detail=""):
        return f"{self.node:<24} {self.clock() - self.started:6.0f} s" + (
            f"   {detail}" if detail else "")

    def _show(self, text, final):
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        elif final:
            self.stream.write(text + "\n")
        self.stream.flush()

    def end_line(self):
        """Close a TTY line a failed step left open."""
        if self.tty and self.node:
            self.stream.write("\n")
            self.stream.flush()


def _console(stream):
    """A stream to the console `stream` writes to, kept when file descriptors 1 and 2 are
    redirected: a duplicate of its descriptor, or `stream` itself when it has none (a test's
    capture)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return stream, False
    return os.fdopen(os.dup(fd), "w", buffering=1), True


class QuietSession:
    """What `quiet` yields: the step lines (`steps`, whose `stream` is the console) and the log
    file, first a temporary one (so a run refused before it starts writes nothing), then where
    `keep_log_at` puts it (`path`)."""

    def __init__(self, steps, log, to_file):
        self.steps, self.log, self.to_file, self.path = steps, log, to_file, None

    def keep_log_at(self, path):
        """Move the log (what it holds so far, and every later line) to the file `path`."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        kept = open(path, "a", encoding="utf-8", buffering=1)
        sys.stdout.flush()
        sys.stderr.flush()
        self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            kept.write(f.read())
        os.dup2(kept.fileno(), 1)
        os.dup2(kept.fileno(), 2)
        self.to_file.setStream(kept)
        self.log.close()
        os.remove(self.log.name)
        self.log, self.path = kept, path


@contextlib.contextmanager
def quiet():
    """Within: every line written to file descriptors 1 and 2 (libraries, subprocesses, C++)
    and every log record go to the log file; this project's step lines and warnings go to the
    console. Yields a `QuietSession`; a log never kept (`keep_log_at`) is deleted on exit."""
    console, owned = _console(sys.stdout)
    log = tempfile.NamedTemporaryFile("w", prefix="lt4rec-run-", suffix=".log", delete=False,
                                      encoding="utf-8", buffering=1)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    to_file = logging.StreamHandler(log)
    to_file.setFormatter(logging.Formatter(LOG_FORMAT))
    steps = StepLines(console, tty=console.isatty())
    root.handlers = [to_file, steps]
    root.setLevel(logging.INFO)
    session = QuietSession(steps, log, to_file)
    try:
        yield session
    finally:
        steps.end_line()
        root.handlers = handlers
        root.setLevel(level)
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        session.log.close()
        if session.path is None:
            os.remove(session.log.name)
        if owned:
            console.close()
