"""The crash-and-rerun scenario, run once per session (its pushed model also serves the fuzz tests).

Run A is SIGKILLed while TicketSearch runs, run B (a rerun) while MTLTrainer runs, run C (a second
rerun) completes. The training data carries non-UTF-8 keyword bytes (a documented tolerance), so
the pushed model is also the one the serving tests fuzz.
"""
import os
import signal
import time

import pytest

from pipeline import synthetic_data
from reliability import helpers

ROWS = 600


def _data(directory):
    """Tiny synthetic logs; every 10th example also carries invalid-UTF-8 keywords."""
    synthetic_data.write_dataset(str(directory / "good"), rows=ROWS, seed=11)
    examples = helpers.read_examples(str(directory / "good"))
    for example in examples[::10]:
        example.features.feature["FEA_IKEYWORD"].bytes_list.value.extend(
            helpers.NON_UTF8_KEYWORDS)
    return os.path.dirname(helpers.write_examples(
        str(directory / "data" / "part-00000.tfrecord.gz"), examples))


def _kill_when(process, pattern, log_path):
    """SIGKILL the run's process group once `pattern` (a partial trainer output) exists."""
    partial = helpers.wait_for_file(process, pattern, log_path)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return partial


@pytest.fixture(scope="session")
def recovered_run(tmp_path_factory):
    """Kill during TicketSearch, rerun and kill during MTLTrainer, rerun to completion."""
    base = tmp_path_factory.mktemp("crash")
    data, root = _data(base), base / "root"
    config = helpers.config_file(base)
    pipeline_dir = str(root / "pipeline")
    started = time.time()
    run_a = helpers.start_run(data, root, config, base / "a.log")
    killed_ticket_search = _kill_when(
        run_a, os.path.join(pipeline_dir, "TicketSearch", "masks", "*", "theta0", "ckpt.index"),
        base / "a.log")
    run_b = helpers.start_run(data, root, config, base / "b.log")
    killed_trainer = _kill_when(
        run_b, os.path.join(pipeline_dir, "MTLTrainer", "model_run", "*", "mtl", "*"),
        base / "b.log")
    run_c = helpers.start_run(data, root, config, base / "c.log")
    code = run_c.wait()
    return {"root": root, "data": data, "exit_codes": (run_a.returncode, run_b.returncode, code),
            "log": (base / "c.log").read_text(encoding="utf-8"),
            "metadata": str(root / "metadata.sqlite"), "serving_dir": str(root / "serving"),
            "killed_ticket_search": killed_ticket_search, "killed_trainer": killed_trainer,
            "seconds": time.time() - started}
