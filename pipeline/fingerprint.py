"""Fingerprints of the code that shapes artifacts, so a code change invalidates TFX's cache.

TFX caches an execution by its inputs and execution properties. Our components and the Transform
`preprocessing_fn` are referenced by name, so an edit to them would otherwise reuse stale results.
Each of them receives the fingerprint of the code it runs as an execution property.
"""
import functools
import hashlib
import os

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRANSFORM_CODE = ("modules/preprocessing.py", "modules/features.py", "modules/config.py",
                  "modules/spec.py", "modules/errors.py", "modules/rules.py")
TRAINER_CODE = ("modules", "components")
EXAMPLE_GEN_CODE = ("components/split_example_gen", "modules/rules.py")


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
