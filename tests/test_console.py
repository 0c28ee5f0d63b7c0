"""The quiet console's step lines (`pipeline/console.py`), fed the records a run logs."""
import io
import logging
import os

from modules import progress
from pipeline import console


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _record(message, name="absl", level=logging.INFO, path="/site-packages/tfx/runner.py"):
    return logging.LogRecord(name, level, path, 1, message, None, None)


def _steps(tty):
    clock = Clock()
    return console.StepLines(io.StringIO(), tty=tty, clock=clock), clock


OURS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "modules",
                    "mtl.py")


def test_one_line_per_step_with_its_duration_latest_progress_and_warnings_in_full():
    steps, clock = _steps(tty=False)
    steps.emit(_record("Component Transform is running."))
    steps.emit(_record("A cached execution 4 is used."))
    clock.now = 2
    steps.emit(_record("Component Transform is finished."))
    steps.emit(_record("Component MTLTrainer is running."))
    clock.now = 30
    steps.emit(_record("epoch 1.0: validation AUC ctr 0.7000", name=progress.LOGGER.name))
    steps.emit(_record("retracing is expensive", level=logging.WARNING))        # a library's
    steps.emit(_record("negative transfer: cvr", level=logging.WARNING, path=OURS))
    clock.now = 90
    steps.emit(_record("epoch 2.0: validation AUC ctr 0.7100", name=progress.LOGGER.name))
    clock.now = 100
    steps.emit(_record("epoch 3.0: validation AUC ctr 0.7200", name=progress.LOGGER.name))
    clock.now = 125
    steps.emit(_record("Component MTLTrainer is finished."))
    assert steps.stream.getvalue().splitlines() == [
        "Transform                     2 s   cached",
        "WARNING: negative transfer: cvr",
        # off a TTY a running step's progress shows at most every PROGRESS_EVERY_SECONDS
        "MTLTrainer                   88 s   epoch 2.0: validation AUC ctr 0.7100",
        "MTLTrainer                  123 s   epoch 3.0: validation AUC ctr 0.7200"]


def test_on_a_tty_the_running_step_line_is_rewritten_in_place():
    steps, clock = _steps(tty=True)
    steps.emit(_record("Component TicketSearch is running."))
    clock.now = 5
    steps.emit(_record("ctr round 1/4 · epoch 1.0: validation AUC ctr 0.6", name="lt4rec.progress"))
    clock.now = 9
    steps.emit(_record("Component TicketSearch is finished."))
    assert steps.stream.getvalue() == (
        "\r\033[KTicketSearch ..."
        "\r\033[KTicketSearch                  5 s   ctr round 1/4 · epoch 1.0: validation AUC ctr 0.6"
        "\r\033[KTicketSearch                  9 s   ctr round 1/4 · epoch 1.0: validation AUC ctr 0.6"
        "\n")


def test_quiet_sends_descriptor_output_and_log_records_to_the_log_it_keeps(tmp_path, capsys):
    path = str(tmp_path / "logs" / "run.log")
    with console.quiet() as session:
        os.write(2, b"C++ noise on descriptor 2\n")
        session.keep_log_at(path)
        logging.getLogger("tensorflow").info("library info")
        session.steps.emit(_record("Component ImportExampleGen is running."))
        session.steps.emit(_record("Component ImportExampleGen is finished."))
        temporary = session.log.name
    text = open(path, encoding="utf-8").read()
    assert "C++ noise on descriptor 2" in text and "library info" in text
    out = capsys.readouterr().out
    assert out.startswith("ImportExampleGen") and "noise" not in out and "library" not in out
    assert temporary == path


def test_a_log_never_kept_is_removed(capsys):
    with console.quiet() as session:
        os.write(1, b"refused before the run started\n")
        temporary = session.log.name
    assert not os.path.exists(temporary)
    assert capsys.readouterr().out == ""
