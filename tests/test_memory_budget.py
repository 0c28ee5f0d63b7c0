"""The embedding-table memory budget against measured peaks: each trainer runs in its own process
on toy data twice, with a small and with a 2M-row FEA_UID table; the growth of its peak resident
memory is what the budget (`memory.table_memory`) must count for the larger table.

Run as a script, this file is the child: `python tests/test_memory_budget.py search|mtl ROWS DIR`
prints the child's peak RSS (`VmHWM`: `ru_maxrss` would carry over the test process's) as JSON;
TicketSearch writes its tickets to DIR, MTL reads them from there.
"""
import json
import os
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL, LARGE = 40, 2_000_000
# The measured growth must be within these fractions of the counted growth: above 1 the budget
# undercounts; far below it the count is loose (or the measurement missed the table).
LOWER, UPPER = 0.7, 1.1

pytestmark = pytest.mark.long


def child_config():
    from conftest import small_config
    return small_config(model={"embedding_dim": 16},
                        mtl={"negative_transfer": "serve_ticket"})


def table_rows(rows):
    """The toy tables, with `rows` rows in FEA_UID's (the toy data touch its first 40)."""
    from conftest import TOY_VOCAB
    from modules.config import Config
    return {**{group: TOY_VOCAB for group in Config().spec.vocabulary_groups()}, "FEA_UID": rows}


def child_inputs(rows):
    """Toy inputs with `table_rows(rows)`."""
    from conftest import toy_training_inputs
    from modules.inputs import TrainingInputs
    toy = toy_training_inputs(tempfile.mkdtemp())
    return TrainingInputs(train=toy.train, validation=toy.validation, evaluation=toy.evaluation,
                          vocab_sizes=table_rows(rows), strategy=toy.strategy)


def child(trainer, rows, directory):
    """One trainer as its executor runs it; prints {"peak_rss_mb", "served_by"} as JSON."""
    from benchmarks import common
    from modules import masks as masks_lib
    from modules import mtl, ticket_search
    config, inputs = child_config(), child_inputs(rows)
    served = {}
    if trainer == "search":
        ticket_search.run_search(inputs, config, directory)
    else:
        tickets = masks_lib.load(directory)
        *_, records = mtl.train_and_guard(
            inputs, config, tickets, ticket_search.start_prefix(directory),
            {task: ticket_search.ticket_prefix(directory, task) for task in tickets})
        served = {task: record["served_by"] for task, record in records.items()}
    print(json.dumps({"peak_rss_mb": common.peak_rss_mb(),
                      "served_by": served}))


def peak(trainer, rows, directory):
    result = subprocess.run([sys.executable, os.path.abspath(__file__), trainer, str(rows),
                             str(directory)], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def counted_mb(rows):
    """What the budget counts for `table_rows(rows)`."""
    from modules import memory
    config = child_config()
    return sum(t["total_mb"] for t in memory.table_memory(
        table_rows(rows), config, config.spec.task_names()).values())


@pytest.fixture(scope="module")
def peaks(tmp_path_factory):
    result = {}
    for rows in (SMALL, LARGE):
        directory = tmp_path_factory.mktemp(f"tickets-{rows}")
        result[rows] = {trainer: peak(trainer, rows, directory) for trainer in ("search", "mtl")}
    return result


@pytest.mark.parametrize("trainer", ["search", "mtl"])
def test_the_budget_counts_what_each_trainer_holds_at_its_peak(peaks, trainer):
    measured = peaks[LARGE][trainer]["peak_rss_mb"] - peaks[SMALL][trainer]["peak_rss_mb"]
    counted = counted_mb(LARGE) - counted_mb(SMALL)
    assert counted > 1000                               # the table dominates what is counted
    assert LOWER * counted <= measured <= UPPER * counted, (trainer, measured, counted, peaks)


def test_mtl_held_a_ticket_network_at_its_peak(peaks):
    """The MTL measurement includes the guard's worst part: a task served from its ticket."""
    assert "ticket" in peaks[LARGE]["mtl"]["served_by"].values(), peaks


if __name__ == "__main__":
    child(sys.argv[1], int(sys.argv[2]), sys.argv[3])
