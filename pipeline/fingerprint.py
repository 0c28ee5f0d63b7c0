"""Fingerprints of the code that shapes artifacts, so a code change invalidates TFX's cache.

TFX caches an execution by its inputs and execution properties. Our components and the Transform
`preprocessing_fn` are referenced by name, so an edit to them would otherwise reuse stale results.
Each of them receives the fingerprint of the code it runs (`imported_code`: the files its entry
module imports, so an edit elsewhere, e.g. to the pusher, keeps its cache) as an execution
property.
"""
import ast
import functools
import hashlib
import os

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PACKAGES = ("modules", "components", "pipeline", "kubeflow")


@functools.lru_cache(maxsize=None)
def imported_code(entry):
    """The repo-relative Python files `entry` runs: itself and every project module it imports,
    transitively (imports inside functions too), with the packages' `__init__.py` files."""
    found, todo = set(), [entry]
    while todo:
        path = todo.pop()
        if path in found:
            continue
        found.add(path)
        with open(os.path.join(_ROOT, path), encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            todo += [f for name in names if name.split(".")[0] in _PACKAGES
                     for f in _module_files(name)]
    return tuple(sorted(found))


def _module_files(name):
    """The files importing dotted `name` runs (its packages' `__init__.py`, the module), if it
    is a module of the repository."""
    parts = name.split(".")
    files = [os.path.join(*parts[:i], "__init__.py") for i in range(1, len(parts) + 1)]
    files.append(os.path.join(*parts) + ".py")
    return [f for f in files if os.path.isfile(os.path.join(_ROOT, f))]


# What each step runs: editing another step's code (the pusher, the evaluator) leaves its cache.
TRANSFORM_CODE = imported_code("modules/preprocessing.py")
TICKET_CODE = imported_code("components/ticket_search/component.py")
TRAINER_CODE = imported_code("components/mtl_trainer/component.py")
EXAMPLE_GEN_CODE = imported_code("components/split_example_gen/component.py")


def _files(path):
    full = os.path.join(_ROOT, path)
    if os.path.isfile(full):
        return [full]
    found = []
    for folder, dirs, files in os.walk(full):
        dirs.sort()
        found += [os.path.join(folder, name) for name in sorted(files)
                  if name.endswith(".py") and not name.endswith("_test.py")]
    return found


@functools.lru_cache(maxsize=None)
def code_fingerprint(paths):
    """sha256 (16 hex digits) over the Python sources under `paths` (repo-relative; no tests)."""
    digest = hashlib.sha256()
    for path in paths:
        for name in _files(path):
            digest.update(os.path.relpath(name, _ROOT).encode())
            with open(name, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()[:16]
