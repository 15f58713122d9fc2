"""The slice DSL: every operator against a plain pandas expression, and its errors."""

from __future__ import annotations

import re
import signal
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from validator.errors import SliceError
from validator.data.slices.dsl import check_columns, evaluate, parse_condition, with_derived_columns

FRAME = with_derived_columns(pd.DataFrame({
    "text": ["Shop now", "GUARANTEED results, risk-free!", "Hello {first_name}", "a b c d e f g",
             "Envío gratis"],
    "content_type": ["cta_button", "headline", "subject_line", "headline", None],
    "high_stakes": [False, True, True, False, False],
    "score": [1.0, 2.5, np.nan, 4.0, 5.0],
}), "text")


def mask(condition: dict) -> list[bool]:
    parsed = parse_condition(condition, "test.yaml: where")
    check_columns(parsed, FRAME.columns)
    return evaluate(parsed, FRAME).tolist()


@pytest.mark.parametrize("condition, expected", [
    ({"content_type": "headline"}, FRAME.content_type.eq("headline")),
    ({"content_type": {"in": ["headline", "cta_button"]}},
     FRAME.content_type.isin(["headline", "cta_button"])),
    ({"content_type": {"not_in": ["headline"]}},
     FRAME.content_type.notna() & ~FRAME.content_type.isin(["headline"])),
    ({"word_count": {"min": 2, "max": 4}}, FRAME.word_count.between(2, 4)),
    ({"score": {"max": 2.5}}, FRAME.score.le(2.5)),
    ({"text": {"matches": "(?i)guarantee|risk[- ]free"}},
     FRAME.text.str.contains("(?i)guarantee|risk[- ]free", regex=True)),
    ({"text": {"contains": "{first_name}"}}, FRAME.text.str.contains("{first_name}", regex=False)),
    ({"score": {"is_null": True}}, FRAME.score.isna()),
    ({"high_stakes": True}, FRAME.high_stakes),
    ({"char_count": {"min": 13}}, FRAME.text.str.len().ge(13)),
    ({"any": [{"high_stakes": True}, {"not": {"content_type": "headline"}}]},
     FRAME.high_stakes | ~FRAME.content_type.eq("headline")),
    ({"all": [{"content_type": "headline"}, {"word_count": {"max": 6}}]},
     FRAME.content_type.eq("headline") & FRAME.word_count.le(6)),
])
def test_operator_matches_pandas(condition, expected):
    assert mask(condition) == expected.fillna(False).astype(bool).tolist()


@pytest.mark.parametrize("condition, message", [
    ({"colour": "red"}, "unknown column 'colour'"),
    ({"content_type": {"like": "head%"}}, "unknown operator 'like'"),
    ({"text": {"matches": "(unclosed"}}, "invalid regex"),
    ({"text": {"matches": r"(a)\1"}}, "not supported by RE2"),
    ({"text": {"matches": "(?=x)x"}}, "not supported by RE2"),
    ({"text": {"matches": "(?<!a)b"}}, "lookaround are not available"),
    ({"text": {"matches": "x" * 501}}, "longer than 500"),
    ({"word_count": {"min": "five"}}, "'min' takes a number"),
    ({"content_type": {"in": []}}, "non-empty list"),
    ({"content_type": None}, "use {is_null: true}"),
    ({"any": {"content_type": "headline"}}, "'any' takes a non-empty list"),
    ({"word_count": "5"}, "compares column 'word_count' (number) with '5' (text)"),
    ({"content_type": {"min": 3}}, "'min' needs a numeric column"),
    ({"score": {"matches": "1"}}, "'matches' needs a text column"),
    ([], "must be a non-empty mapping"),
])
def test_errors_name_the_place_and_the_problem(condition, message):
    with pytest.raises(SliceError) as info:
        mask(condition)
    assert info.value.args[0].startswith("test.yaml: where")
    assert message in info.value.args[0]


LINEAR_TIME_LIMIT_S = 5  # RE2 takes milliseconds; a backtracking engine, ~2^50000 steps


@contextmanager
def time_limit(seconds: int):
    """Raise TimeoutError in the test after ``seconds`` of wall time. Python's ``re``
    checks for signals while it matches, so a backtracking match is interrupted."""
    def expire(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s: not linear time")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def linear_time_case(pattern):
    frame = pd.DataFrame({"text": ["a" * 50_000 + "c", "aab", None]})
    parsed = parse_condition({"text": {"matches": pattern}}, "test.yaml: where")
    return frame, parsed, [False, pattern in ("((a+))+b", "(a|aa)+b"), False]


@pytest.mark.parametrize("pattern", ["((a+))+b", "(a|aa)+b", "(a+)+$", r"(\w*)*!"])
def test_patterns_that_backtrack_in_re_run_in_linear_time(pattern):
    # Python's re needs ~2^n steps for these on "aaa...a" without the final match; RE2 is
    # linear, so 50,000 characters take milliseconds; the time limit fails a backtracking
    # engine instead of hanging the suite
    frame, parsed, expected = linear_time_case(pattern)
    with time_limit(LINEAR_TIME_LIMIT_S):
        assert evaluate(parsed, frame).tolist() == expected


def test_the_time_limit_fails_a_backtracking_engine():
    frame, parsed, _ = linear_time_case("(a+)+$")
    backtracking = replace(parsed, value=re.compile("(a+)+$"))
    with pytest.raises(TimeoutError, match="not linear time"), time_limit(1):
        evaluate(backtracking, frame)


def test_matches_keeps_inline_flags_and_skips_missing_values():
    frame = pd.DataFrame({"text": pd.array(["RISK-FREE offer", None, "no risk"],
                                           dtype="string")})
    parsed = parse_condition({"text": {"matches": "(?i)risk[- ]free"}}, "test.yaml: where")
    assert evaluate(parsed, frame).tolist() == [True, False, False]
