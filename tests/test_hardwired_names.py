"""Ratchet on hard-wired LT4REC names in production code (the feature/task spec removes them).

Per production file (modules/, components/, pipeline/, kubeflow/; not tests, benchmarks, the
LT4REC feature list `modules/features.py` or the synthetic LT4REC story
`pipeline/synthetic_data.py`) it counts, outside docstrings and comments:
- `task`: identifiers and string literals naming a task (`ctr`, `cvr`, `ctcvr`, alone or as a
  `_`-separated part: `ctr_loss`, "cvr_auc");
- `label`: the label columns as string literals ("label", "cvrlabel", "conversion") or through
  `features.LABEL`, `CVR_LABEL`, `CONVERSION`;
- `feature`: LT4REC feature names (string literals holding `FEA_...`, "seqnum", "pctr") and the
  feature-list constants (`features.SINGLE_VALUED`, `SEQNUM`, ...).
A count may only fall. When one grows the test fails naming the file; when counts fall, lower
the committed baseline with `python tests/test_hardwired_names.py --write` (run from the repo).
"""
import ast
import io
import json
import os
import re
import sys
import tokenize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE = os.path.join(ROOT, "tests", "hardwired_names.json")
PACKAGES = ("modules", "components", "pipeline", "kubeflow")
EXEMPT = ("modules/features.py", "pipeline/synthetic_data.py")
TASK_PART = re.compile(r"(?<![A-Za-z0-9])(ctr|cvr|ctcvr)(?![A-Za-z0-9])")
LABEL_LITERALS = {"label", "cvrlabel", "conversion"}
LABEL_NAMES = {"LABEL", "CVR_LABEL", "CONVERSION"}
FEATURE_LITERAL = re.compile(r"FEA_[A-Z0-9]+|^seqnum$|^pctr$|^pctr_score$")
FEATURE_NAMES = {"SINGLE_VALUED", "MULTI_VALUED", "STRING_FEATURES", "RAW_FEATURES",
                 "SHARED_VOCABULARIES", "SEQNUM", "PCTR", "PCTR_SCORE"}


def _docstring_lines(source):
    """Line numbers of bare string statements (docstrings)."""
    lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and \
                isinstance(node.value.value, str):
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def _literal(token):
    try:
        value = ast.literal_eval(token)
    except (ValueError, SyntaxError):        # f-strings: count in their text
        return token
    return value if isinstance(value, str) else ""


def count(source):
    """{"task", "label", "feature": occurrences} in one file's source."""
    counts = {"task": 0, "label": 0, "feature": 0}
    skip = _docstring_lines(source)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.start[0] in skip:
            continue
        if token.type == tokenize.NAME:
            counts["task"] += len(TASK_PART.findall(token.string.replace("_", " ")))
            counts["label"] += token.string in LABEL_NAMES
            counts["feature"] += token.string in FEATURE_NAMES
        elif token.type == tokenize.STRING:
            text = _literal(token.string)
            counts["task"] += len(TASK_PART.findall(text.replace("_", " ")))
            counts["label"] += text in LABEL_LITERALS
            counts["feature"] += len(FEATURE_LITERAL.findall(text))
    return counts


def production_counts():
    """{repo-relative path: counts} of every production file with a non-zero count."""
    found = {}
    for package in PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(ROOT, package)):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
            for name in sorted(files):
                path = os.path.relpath(os.path.join(folder, name), ROOT)
                if not name.endswith(".py") or name.endswith("_test.py") or path in EXEMPT:
                    continue
                with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                    counts = count(f.read())
                if any(counts.values()):
                    found[path] = counts
    return found


def grown(now, baseline):
    """["path: kind a -> b"] for every count above its baseline (new files start at zero)."""
    zero = {"task": 0, "label": 0, "feature": 0}
    return [f"{path}: {kind} {baseline.get(path, zero)[kind]} -> {value}"
            for path, counts in sorted(now.items()) for kind, value in counts.items()
            if value > baseline.get(path, zero)[kind]]


def _baseline():
    with open(BASELINE, encoding="utf-8") as f:
        return json.load(f)


def test_no_hard_wired_name_count_grows():
    assert grown(production_counts(), _baseline()) == [], (
        "new hard-wired LT4REC names in production code: read them from the config/spec instead")


def test_the_baseline_is_current():
    assert production_counts() == _baseline(), (
        "counts fell: lower the baseline with `python tests/test_hardwired_names.py --write`")


def test_the_counter_sees_each_kind_and_skips_docstrings():
    source = ('"""ctr cvr label FEA_UID."""\n'
              'def f(batch):\n'
              '    """The ctr task."""\n'
              '    # ctr in a comment\n'
              '    x = batch[features.LABEL] + batch["cvrlabel"]\n'
              '    return {"ctr": x, "pctr_score": config.cvr_loss, "FEA_VID": features.SEQNUM}\n')
    assert count(source) == {"task": 2, "label": 2, "feature": 3}
    assert grown({"a.py": {"task": 3, "label": 0, "feature": 0}},
                 {"a.py": {"task": 2, "label": 0, "feature": 0}}) == ["a.py: task 2 -> 3"]


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_hardwired_names.py --write")
    with open(BASELINE, "w", encoding="utf-8") as out:
        json.dump(production_counts(), out, indent=1, sort_keys=True)
        out.write("\n")
    print(f"wrote {BASELINE}")
