"""The rule language of label and row definitions: parsing, precedence, both backends, refusals."""
import numpy as np
import pytest
import tensorflow as tf

from modules import rules
from modules.rules import RuleError

LABEL = np.array([1, 1, 0, 1, 0, 1], np.int64)
RATE = np.array([0.8, 0.5, 0.0, 0.95, 0.9, 0.79999], np.float32)
BRAND = np.array([3, 7, 3, 0, 7, 2], np.int64)
VALUES = {"label": LABEL, "cvrlabel": RATE, "brand": BRAND}


def both(text):
    """The rule on VALUES by numpy and by TF, which must agree; returns the numpy result."""
    node = rules.parse(text)
    on_numpy = np.asarray(rules.evaluate(node, VALUES, rules.NUMPY))
    on_tf = rules.evaluate(node, {k: tf.constant(v) for k, v in VALUES.items()},
                           rules.tensorflow_backend()).numpy()
    np.testing.assert_array_equal(on_numpy, on_tf)
    return on_numpy


def test_comparisons_on_int_and_float_columns():
    assert both("label == 1").tolist() == [True, True, False, True, False, True]
    assert both("label != 1").tolist() == [False, False, True, False, True, False]
    # float32 0.8 >= 0.8 (the threshold compared as the column stores it); 0.79999 < 0.8
    assert both("cvrlabel >= 0.8").tolist() == [True, False, False, True, True, False]
    assert both("cvrlabel > 0.8").tolist() == [False, False, False, True, True, False]
    assert both("brand <= 3").tolist() == [True, False, True, True, False, True]
    assert both("brand < 3.5").tolist() == both("brand <= 3").tolist()
    assert both("3 < brand").tolist() == [False, True, False, False, True, False]
    assert both("label == 1e0").tolist() == both("label == 1").tolist()


def test_and_binds_tighter_than_or_and_not_tighter_than_and():
    conversion = (LABEL == 1) & (RATE >= np.float32(0.8))
    assert both("label == 1 and cvrlabel >= 0.8").tolist() == conversion.tolist()
    assert both("brand == 7 or label == 1 and cvrlabel >= 0.8").tolist() == (
        (BRAND == 7) | conversion).tolist()
    assert both("(brand == 7 or label == 1) and cvrlabel >= 0.8").tolist() == (
        ((BRAND == 7) | (LABEL == 1)) & (RATE >= np.float32(0.8))).tolist()
    assert both("not label == 1 and brand == 7").tolist() == (
        (LABEL != 1) & (BRAND == 7)).tolist()
    assert both("not (label == 1 and brand == 7)").tolist() == (
        ~((LABEL == 1) & (BRAND == 7))).tolist()
    assert both("not not label == 1").tolist() == (LABEL == 1).tolist()


def test_a_bare_column_is_its_value_and_means_not_zero_in_logic():
    np.testing.assert_array_equal(both("cvrlabel"), RATE)
    assert both("label and cvrlabel >= 0.9").tolist() == [False, False, False, True, False,
                                                          False]
    assert both("not brand").tolist() == (BRAND == 0).tolist()


def test_columns_are_listed_in_order_of_first_use():
    # (a column missing from the schema is refused naming the task and the column:
    # tests/test_spec.py::test_a_task_rule_naming_a_column_the_schema_lacks_is_refused_...)
    assert rules.columns(rules.parse("label == 1 and (cvrlabel >= 0.8 or label)")) == [
        "label", "cvrlabel"]


@pytest.mark.parametrize("text, message", [
    ("__import__('os').system('true')", r"at position 11: unexpected"),
    ("__import__(1)", r"'__import__' is a column: a rule calls no functions"),
    ("exec(1)", r"'exec' is a column: a rule calls no functions"),
    ("label.__class__", r"at position 5: unexpected '\.'"),
    ("label[0] == 1", r"at position 5: unexpected '\['"),
    ("lambda: 1", r"unexpected ':'"),
    ("label == 'x'", r"unexpected \"'\""),
    ("label == 1 and", r"at position 14: expected a column, a number or '\(', found the end"),
    ("0 < cvrlabel < 1", r"comparisons do not chain"),
    ("(label == 1", r"expected '\)', found the end"),
    ("label 1", r"expected 'and', 'or', a comparison or the end, found '1'"),
    ("", r"is empty"),
    ("label = 1", r"unexpected '='"),
])
def test_what_is_not_the_rule_language_is_refused(text, message):
    with pytest.raises(RuleError, match=message):
        rules.parse(text)


def test_no_python_name_is_reachable_only_the_given_columns():
    # a column named like a Python builtin is just a column, and evaluation never looks
    # outside `values`
    node = rules.parse("open == 1")
    assert rules.columns(node) == ["open"]
    assert rules.evaluate(node, {"open": np.array([1, 2])}, rules.NUMPY).tolist() == [True,
                                                                                     False]
    with pytest.raises(KeyError, match="eval"):
        rules.evaluate(rules.parse("eval"), {"label": np.array([1])}, rules.NUMPY)
