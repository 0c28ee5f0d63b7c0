"""Rules over label columns, e.g. `label == 1 and cvrlabel >= 0.8`: parsed safely, evaluated
on numpy arrays or TF tensors.

Ground layer: imports nothing else of the project (config validation parses every rule before
anything runs). A rule is a small expression language, never Python: no `eval`, no names but
the columns given, no calls, attributes or indexing.

    rule       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand (("==" | "!=" | ">=" | "<=" | ">" | "<") operand)?
    operand    := NUMBER | COLUMN | "(" rule ")"

`not` binds tighter than `and`, which binds tighter than `or`; comparisons do not chain. A bare
column or number is its value; as an operand of `and` / `or` / `not` it means "is not zero".
Values are compared as float32 on both backends, as the transformed columns hold them, so
Transform (TF) and the baselines and split sizing (numpy) select the same rows.
"""
import dataclasses
import functools
import re
from typing import Tuple

from modules.errors import ConfigError

COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
KEYWORDS = ("and", "or", "not")
_TOKEN = re.compile(r"\s*(?:(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>==|!=|>=|<=|>|<|\(|\)))")


class RuleError(ConfigError):
    """A rule that does not parse, or reads a column that is not there; names the rule."""


@dataclasses.dataclass(frozen=True)
class Node:
    """A parsed rule: `kind` "number" / "column" / "not" / "and" / "or" / a comparison."""
    kind: str
    value: object = None                 # number: float; column: its name
    children: Tuple["Node", ...] = ()


@functools.lru_cache(maxsize=1024)
def parse(text):
    """The Node tree of a rule (cached: it is immutable); RuleError naming the rule and the
    position if it is malformed."""
    tokens = _tokens(text)
    parser = _Parser(text, tokens)
    node = parser.rule()
    if parser.position < len(tokens):
        parser.fail("expected 'and', 'or', a comparison or the end")
    return node


def columns(node):
    """The column names a parsed rule reads, in order of first use."""
    if node.kind == "column":
        return [node.value]
    return list(dict.fromkeys(c for child in node.children for c in columns(child)))


def evaluate(node, values, backend):
    """The rule on `values` ({column: array or tensor}): float32 values for a number or column,
    booleans otherwise. `backend` is `NUMPY` or `tensorflow_backend()`."""
    if node.kind == "number":
        return node.value
    if node.kind == "column":
        return backend.as_float(values[node.value])
    if node.kind == "not":
        return backend.logical_not(_truth(evaluate(node.children[0], values, backend), backend))
    if node.kind in ("and", "or"):
        combine = backend.logical_and if node.kind == "and" else backend.logical_or
        result = _truth(evaluate(node.children[0], values, backend), backend)
        for child in node.children[1:]:
            result = combine(result, _truth(evaluate(child, values, backend), backend))
        return result
    left, right = (evaluate(child, values, backend) for child in node.children)
    return _COMPARE[node.kind](backend.as_float(left), backend.as_float(right))


def holds(node, values, backend):
    """Booleans: where the rule holds (a value: where it is not zero)."""
    return _truth(evaluate(node, values, backend), backend)


class _Backend:
    def __init__(self, as_float, logical_and, logical_or, logical_not):
        self.as_float, self.logical_and = as_float, logical_and
        self.logical_or, self.logical_not = logical_or, logical_not


def _numpy_backend():
    import numpy as np
    return _Backend(lambda x: np.asarray(x, np.float32), np.logical_and, np.logical_or,
                    np.logical_not)


def tensorflow_backend():
    """The TF backend (imports TensorFlow)."""
    import tensorflow as tf
    return _Backend(lambda x: tf.cast(x, tf.float32), tf.logical_and, tf.logical_or,
                    tf.logical_not)


NUMPY = _numpy_backend()
_COMPARE = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, ">=": lambda a, b: a >= b,
            "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}


def _truth(value, backend):
    """Booleans as they are; a value means "is not zero"."""
    if getattr(value, "dtype", None) == bool:
        return value
    return backend.as_float(value) != 0


def _tokens(text):
    if not isinstance(text, str) or not text.strip():
        raise RuleError(f"rule {text!r} is empty")
    tokens, position = [], 0
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if not match or match.end() == position:
            raise RuleError(f"cannot parse rule {text!r} at position {position}: unexpected "
                            f"{stripped[position:].lstrip()[:1]!r} (a rule holds columns, numbers, "
                            f"comparisons {list(COMPARISONS)}, and / or / not and parentheses)")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), match.start(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text, tokens):
        self.text, self.tokens, self.position = text, tokens, 0

    def fail(self, expected):
        at = self.tokens[self.position][2] if self.position < len(self.tokens) else len(self.text)
        found = repr(self.tokens[self.position][1]) if self.position < len(self.tokens) \
            else "the end"
        raise RuleError(f"cannot parse rule {self.text!r} at position {at}: {expected}, "
                        f"found {found}")

    def peek(self, value):
        return self.position < len(self.tokens) and self.tokens[self.position][1] == value \
            and self.tokens[self.position][0] != "number"

    def rule(self):
        return self.joined("or", self.conjunction)

    def conjunction(self):
        return self.joined("and", self.negation)

    def joined(self, keyword, part):
        children = [part()]
        while self.peek(keyword):
            self.position += 1
            children.append(part())
        return children[0] if len(children) == 1 else Node(keyword, children=tuple(children))

    def negation(self):
        if self.peek("not"):
            self.position += 1
            return Node("not", children=(self.negation(),))
        return self.comparison()

    def comparison(self):
        left = self.operand()
        for op in COMPARISONS:
            if self.peek(op):
                self.position += 1
                node = Node(op, children=(left, self.operand()))
                if any(self.peek(other) for other in COMPARISONS):
                    self.fail("comparisons do not chain: join them with 'and'")
                return node
        return left

    def operand(self):
        if self.position >= len(self.tokens):
            self.fail("expected a column, a number or '('")
        kind, value, _ = self.tokens[self.position]
        if kind == "number":
            self.position += 1
            return Node("number", float(value))
        if kind == "name" and value not in KEYWORDS:
            self.position += 1
            if self.peek("("):
                self.fail(f"'{value}' is a column: a rule calls no functions")
            return Node("column", value)
        if value == "(":
            self.position += 1
            node = self.rule()
            if not self.peek(")"):
                self.fail("expected ')'")
            self.position += 1
            return node
        self.fail("expected a column, a number or '('")
