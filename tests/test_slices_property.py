"""Property-based tests: random slice definitions over random samples.

The parser and evaluator either raise the documented SliceError or return a mask that
agrees with a plain pandas implementation of the same condition.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from validator.errors import SliceError
from validator.data.slices.dsl import check_columns, evaluate, parse_condition, with_derived_columns

TYPES = ["headline", "subject_line", "sms", "ünïcödé", ""]
PATTERNS = ["(?i)free", "^a", r"\d+", "é", "🎉", "x|y"]
texts = st.one_of(st.text(max_size=30), st.just(""), st.text(min_size=2000, max_size=3000),
                  st.sampled_from(["GUARANTEED!!!", "{first_name}, hi", "Envío 🎉"]))
frames = st.integers(min_value=0, max_value=25).flatmap(lambda n: st.fixed_dictionaries({
    "text": st.lists(texts, min_size=n, max_size=n),
    "content_type": st.lists(st.one_of(st.none(), st.sampled_from(TYPES)), min_size=n,
                             max_size=n),
    "score": st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=False, width=32),
                                st.none()), min_size=n, max_size=n),
    "flag": st.lists(st.booleans(), min_size=n, max_size=n),
}))

numbers = st.one_of(st.integers(-5, 40), st.floats(-5, 40, allow_nan=False))
leaf = st.one_of(
    st.builds(lambda v: {"content_type": v}, st.sampled_from(TYPES)),
    st.builds(lambda v: {"content_type": {"in": v}}, st.lists(st.sampled_from(TYPES),
                                                              min_size=1, max_size=3)),
    st.builds(lambda v: {"content_type": {"not_in": v}}, st.lists(st.sampled_from(TYPES),
                                                                  min_size=1, max_size=3)),
    st.builds(lambda c, v: {c: {"min": v}}, st.sampled_from(["score", "word_count",
                                                             "char_count"]), numbers),
    st.builds(lambda c, v: {c: {"max": v}}, st.sampled_from(["score", "word_count",
                                                             "char_count"]), numbers),
    st.builds(lambda v: {"text": {"matches": v}}, st.sampled_from(PATTERNS)),
    st.builds(lambda v: {"text": {"contains": v}}, st.sampled_from(["a", "🎉", "{", "!!"])),
    st.builds(lambda c, v: {c: {"is_null": v}}, st.sampled_from(["score", "content_type"]),
              st.booleans()),
    st.builds(lambda v: {"flag": v}, st.booleans()),
    # invalid on purpose: must raise SliceError, never anything else
    st.builds(lambda v: {"score": {"matches": v}}, st.sampled_from(PATTERNS)),
    st.builds(lambda v: {"nope": v}, st.sampled_from(TYPES)),
    st.builds(lambda v: {"content_type": {"like": v}}, st.sampled_from(TYPES)),
    st.builds(lambda v: {"word_count": v}, st.sampled_from(["five", "5"])),
)
conditions = st.recursive(leaf, lambda inner: st.one_of(
    st.builds(lambda items: {"all": items}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda items: {"any": items}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda item: {"not": item}, inner)), max_leaves=6)


def reference(condition: dict, frame: pd.DataFrame) -> pd.Series:
    """The same semantics in plain pandas (nulls never satisfy a comparison)."""
    parts = []
    for key, value in condition.items():
        if key == "all":
            parts.append(np.logical_and.reduce([reference(c, frame) for c in value]))
        elif key == "any":
            parts.append(np.logical_or.reduce([reference(c, frame) for c in value]))
        elif key == "not":
            parts.append(~reference(value, frame))
        elif not isinstance(value, dict):
            parts.append(frame[key].eq(value).fillna(False).astype(bool).to_numpy())
        else:
            column = frame[key]
            for op, arg in value.items():
                present = column.notna().to_numpy()
                if op == "in":
                    parts.append(column.isin(arg).to_numpy() & present)
                elif op == "not_in":
                    parts.append(~column.isin(arg).to_numpy() & present)
                elif op == "min":
                    parts.append((column.astype(float) >= arg).fillna(False).to_numpy(bool))
                elif op == "max":
                    parts.append((column.astype(float) <= arg).fillna(False).to_numpy(bool))
                elif op == "matches":
                    # RE2's \d, \w and \b are ASCII classes, as re's are under re.ASCII
                    parts.append(np.array([isinstance(t, str) and
                                           re.search(arg, t, re.ASCII) is not None
                                           for t in column]))
                elif op == "contains":
                    parts.append(np.array([isinstance(t, str) and arg in t for t in column]))
                elif op == "is_null":
                    parts.append(~present if arg else present)
    return np.logical_and.reduce(parts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames, conditions)
def test_masks_agree_with_pandas_or_raise_the_documented_error(data, condition):
    frame = pd.DataFrame(data).astype({"score": "float64", "flag": "bool"})
    frame = with_derived_columns(frame, "text")
    try:
        parsed = parse_condition(condition, "prop.yaml: where")
        check_columns(parsed, frame.columns)
        mask = evaluate(parsed, frame)
    except SliceError as error:
        assert str(error).startswith("prop.yaml: where")
        return
    assert mask.dtype == bool and mask.shape == (len(frame),)
    np.testing.assert_array_equal(mask, np.asarray(reference(condition, frame), dtype=bool))


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.one_of(st.none(), st.integers(), st.text(max_size=5), st.booleans()),
                    lambda inner: st.one_of(st.lists(inner, max_size=3),
                                            st.dictionaries(st.text(max_size=8), inner,
                                                            max_size=3)), max_leaves=8))
def test_arbitrary_yaml_values_never_crash_the_parser(node):
    try:
        parse_condition(node, "prop.yaml: where")
    except SliceError:
        pass
