"""A fingerprint of the code and schema that shape artifacts, so a code change invalidates caches.

TFX caches an execution by its inputs and execution properties. Our components and the Transform
`preprocessing_fn` are referenced by name, so an edit to them would otherwise reuse stale results.
Each of them receives this fingerprint as an execution property.
"""
import functools
import hashlib
import os

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TRACKED = ("modules", "components", "schema")


@functools.lru_cache(maxsize=None)
def code_fingerprint():
    """sha256 over the source of modules/, components/ and schema/ (tests excluded)."""
    digest = hashlib.sha256()
    for top in _TRACKED:
        for folder, dirs, files in sorted(os.walk(os.path.join(_ROOT, top))):
            dirs.sort()
            for name in sorted(files):
                if name.endswith((".py", ".pbtxt")) and not name.endswith("_test.py"):
                    path = os.path.join(folder, name)
                    digest.update(os.path.relpath(path, _ROOT).encode())
                    with open(path, "rb") as f:
                        digest.update(f.read())
    return digest.hexdigest()[:16]
