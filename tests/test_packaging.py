"""The installed package imports where the pipeline's code runs: outside the repository and in
a Beam multi-processing worker (how Transform and ExampleGen workers load our modules)."""
import operator
import pathlib
import re
import subprocess
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

REPO = pathlib.Path(__file__).resolve().parent.parent
GROUND_CHECK = ("from modules.config import Config; from modules import features; "
                "print(Config().data.split_key, features.PAD_ID)")


def test_the_ground_imports_from_outside_the_repository(tmp_path):
    done = subprocess.run([sys.executable, "-c", GROUND_CHECK], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["seqnum", "-1"]


def test_the_ground_imports_in_a_beam_multi_processing_worker():
    """The worker unpickles `Config.from_json` by reference, so it imports `modules.config`."""
    from modules.config import Config
    options = PipelineOptions(["--direct_running_mode=multi_processing",
                               "--direct_num_workers=1"])
    with beam.Pipeline(options=options) as pipeline:
        configs = pipeline | beam.Create([Config().to_json()]) | beam.Map(Config.from_json)
        assert_that(configs | beam.Map(operator.attrgetter("data.split_key")),
                    equal_to(["seqnum"]))


def _setup_keyword(name):
    """The value node of keyword `name` in setup.py's setup(...) call (a call such as
    find_packages(include=[...]) stays a Call node, its literal arguments evaluable)."""
    import ast
    tree = ast.parse((REPO / "setup.py").read_text())
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call)
                and getattr(node.func, "id", "") == "setup")
    node = next(k.value for k in call.keywords if k.arg == name)
    if isinstance(node, ast.Call):
        node.keywords[0].value = ast.literal_eval(node.keywords[0].value)
    return node


def _dockerfile():
    """The Dockerfile's instructions (continuation lines joined), as (keyword, rest)."""
    text = (REPO / "kubeflow" / "Dockerfile").read_text().replace("\\\n", " ")
    return [tuple(line.split(None, 1)) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_the_image_installs_exactly_the_lock_then_every_package_setup_py_ships():
    """The Kubeflow image is the tested environment: the Python of .python-version, the lock's
    pins and nothing else (no second set of pins), the dependency layer before the code, and
    every package setup.py ships (plus the schema, which kubeflow.schema_path names)."""
    import setuptools
    steps = _dockerfile()
    python = (REPO / ".python-version").read_text().strip()
    assert steps[0] == ("FROM", f"python:{python}-slim-bookworm")
    runs = [rest for keyword, rest in steps if keyword == "RUN"]
    installs = [part.strip() for rest in runs for part in rest.split("&&")
                if "pip install" in part]
    assert installs == [
        "python -m pip install --no-cache-dir -c requirements/lock.txt pip setuptools wheel",
        "python -m pip install --no-cache-dir --no-deps -r requirements/lock.txt",
        "python -m pip install --no-cache-dir --no-deps -e ."]
    assert not re.search(r"==|>=", "".join(runs))
    copies = [rest.split()[0].rstrip("/") for keyword, rest in steps if keyword == "COPY"]
    shipped = {name.split(".")[0] for name in setuptools.find_packages(
        str(REPO), include=_setup_keyword("packages").keywords[0].value)}
    assert shipped == {"pipeline", "components", "modules", "kubeflow"}
    assert shipped | {"schema", "setup.py", "requirements/lock.txt"} <= set(copies)
    order = [keyword + " " + rest for keyword, rest in steps]
    lock_install = next(i for i, step in enumerate(order) if "-r requirements/lock.txt" in step)
    assert lock_install < min(order.index(f"COPY {name}/ {name}/") for name in shipped)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "runs", ".git"} <= set(ignored)
