"""Regex expectations evaluated on RE2, like slice regexes.

great-expectations runs ``expect_column_values_to_match_regex`` and its siblings with
Python's ``re`` (``column.astype(str).str.contains(regex)``), which backtracks: one
pattern such as ``^(\\w+\\s?)*X$`` over a sample's texts ran for hours. These four types
are therefore evaluated here with RE2 (linear time for every pattern), with
great-expectations' own semantics: a match anywhere in the value (``search``), values
read as text, missing values neither expected nor unexpected, and ``mostly`` the share
of present values that must pass (default 1). great-expectations still checks their
arguments; patterns RE2 cannot express (backreferences, lookaround) are refused at
parse time, with the file and key, as in slice files.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from validator.data.regex import compile_regex

# type -> (kwarg holding the pattern(s), whether the value must match)
REGEX_TYPES = {
    "expect_column_values_to_match_regex": ("regex", True),
    "expect_column_values_to_not_match_regex": ("regex", False),
    "expect_column_values_to_match_regex_list": ("regex_list", True),
    "expect_column_values_to_not_match_regex_list": ("regex_list", False),
}


def compiled_patterns(kind: str, kwargs: dict, where: str) -> list:
    """The expectation's patterns compiled by RE2 (a SliceError names the key)."""
    argument, _ = REGEX_TYPES[kind]
    patterns = kwargs.get(argument)
    if argument == "regex":
        return [compile_regex(patterns, f"{where}.kwargs.regex")]
    if not isinstance(patterns, list) or not patterns:
        return []  # great-expectations' own argument check names the problem
    return [compile_regex(p, f"{where}.kwargs.regex_list[{i}]") for i, p in enumerate(patterns)]


def _passes(text: str, kind: str, kwargs: dict, patterns: list) -> bool:
    found = [p.search(text) is not None for p in patterns]
    if kind == "expect_column_values_to_match_regex_list":
        return all(found) if kwargs.get("match_on", "any") == "all" else any(found)
    return any(found) if REGEX_TYPES[kind][1] else not any(found)


def regex_result(frame: pd.DataFrame, kind: str, kwargs: dict, patterns: list,
                 id_column: str, shown: int) -> dict[str, Any]:
    """(success, unexpected_count, a few examples) as great-expectations would report."""
    column = kwargs["column"]
    values = frame[column]
    present = values.notna()
    passed = values[present].astype(str).map(lambda text: _passes(text, kind, kwargs, patterns))
    unexpected = passed.index[~passed.to_numpy(dtype=bool)]
    mostly = kwargs.get("mostly")
    share = 1.0 if not len(passed) else float(passed.mean())
    success = share >= (1.0 if mostly is None else float(mostly))
    rows = frame.loc[unexpected[:shown]]
    ids = rows[id_column].tolist() if id_column in frame.columns else rows.index.tolist()
    examples = [f"id {i!r} = {value!r}" for i, value in zip(ids, rows[column].tolist())]
    return {"success": success, "unexpected_count": int(len(unexpected)), "examples": examples}
