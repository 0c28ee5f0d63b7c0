"""The project's layers: imports only run downwards.

ground (`modules/config.py`, `errors.py`, `features.py`, `rules.py`, `spec.py`) <- modules <-
components <- pipeline, kubeflow, benchmarks (the top: the CLI in `pipeline/` compiles for
Kubeflow). Every import counts, also those inside functions.
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("modules", "components", "pipeline", "kubeflow", "benchmarks")
GROUND = ("modules.config", "modules.errors", "modules.features", "modules.rules", "modules.spec")


def project_imports(source):
    """Dotted names of the project modules `source` imports (`from a import b` gives a.b when
    a.b is a module, else a)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" if _is_module(f"{node.module}.{alias.name}")
                     else node.module for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] in PACKAGES}
    return found


def _is_module(dotted):
    path = os.path.join(ROOT, *dotted.split("."))
    return os.path.isfile(path + ".py") or os.path.isdir(path)


def _sources(package):
    """{dotted module name: source} of a package's production files (no tests)."""
    found = {}
    for folder, dirs, files in os.walk(os.path.join(ROOT, package)):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        for name in sorted(files):
            if name.endswith(".py") and not name.endswith("_test.py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                with open(path, encoding="utf-8") as f:
                    found[dotted.removesuffix(".__init__")] = f.read()
    return found


def violations(sources, allowed):
    """["module imports name"] for every project import of `sources` that `allowed(module, name)`
    refuses."""
    return sorted(f"{module} imports {name}" for module, source in sources.items()
                  for name in project_imports(source) if not allowed(module, name))


def _top(name):
    return name.split(".")[0]


def test_the_ground_imports_nothing_else_of_the_project():
    ground = {m: s for m, s in _sources("modules").items() if m in GROUND}
    assert sorted(ground) == sorted(GROUND)
    assert violations(ground, lambda module, name: name in GROUND) == []


@pytest.mark.parametrize("package, forbidden", [
    ("modules", ("components", "pipeline", "kubeflow", "benchmarks")),
    ("components", ("pipeline", "kubeflow", "benchmarks")),
])
def test_a_layer_never_imports_a_layer_above_it(package, forbidden):
    assert violations(_sources(package), lambda module, name: _top(name) not in forbidden) == []


def test_the_checker_sees_imports_inside_functions_and_from_imports():
    source = ("import os\nfrom modules import features, training\n"
              "def f():\n    from pipeline.pipeline import create_pipeline\n"
              "    import kubeflow.runner\n")
    assert project_imports(source) == {"modules.features", "modules.training",
                                       "pipeline.pipeline", "kubeflow.runner"}
    assert violations({"modules.config": source}, lambda module, name: name in GROUND) == [
        "modules.config imports kubeflow.runner", "modules.config imports modules.training",
        "modules.config imports pipeline.pipeline"]
