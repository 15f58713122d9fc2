"""The condition language of slice files and ``sample.where`` (parsed, never executed).

A condition is a mapping. Each key is either a combinator (``all``/``any`` take a
list of conditions, ``not`` takes one) or a column name whose value is a scalar
(equality) or a mapping of operators, all of which must hold:
``in``, ``not_in``, ``min``, ``max`` (inclusive), ``matches`` (regex search),
``contains`` (substring), ``is_null``. Several keys in one mapping must all hold.
Null values never satisfy a comparison (only ``is_null: true``).

``matches`` runs on RE2 (``google-re2``), whose matching time is linear in the text
for every pattern, so no slice file can make a run backtrack for hours. Patterns RE2
cannot express (backreferences, lookaround) are refused with RE2's reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from validator.data.regex import compile_regex
from validator.errors import SliceError

OPERATORS = ("in", "not_in", "min", "max", "matches", "contains", "is_null")
COMBINATORS = ("all", "any", "not")
DERIVED_COLUMNS: dict[str, Callable[[pd.Series], pd.Series]] = {
    # one row at a time: str.split() on the whole column would hold every word at once
    "word_count": lambda text: text.map(lambda t: len(t.split()) if isinstance(t, str) else 0,
                                        na_action="ignore").fillna(0).astype("int64"),
    "char_count": lambda text: text.str.len().fillna(0).astype("int64"),
}
Scalar = (str, int, float, bool)


@dataclass(frozen=True)
class Compare:
    column: str
    op: str  # "eq" or one of OPERATORS
    value: Any
    where: str  # the YAML path, for error messages


@dataclass(frozen=True)
class AllOf:
    items: tuple


@dataclass(frozen=True)
class AnyOf:
    items: tuple


@dataclass(frozen=True)
class Not:
    item: Any


Condition = Compare | AllOf | AnyOf | Not


def parse_condition(node: Any, where: str) -> Condition:
    """Parse a YAML condition; ``where`` names it ("slices/x.yaml: slices[0].where")."""
    if not isinstance(node, dict) or not node:
        raise SliceError(f"{where}: a condition must be a non-empty mapping, got {node!r}")
    parts = [_parse_key(key, value, f"{where}.{key}") for key, value in node.items()]
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _parse_key(key: Any, value: Any, where: str) -> Condition:
    if not isinstance(key, str):
        raise SliceError(f"{where}: keys must be column names or {', '.join(COMBINATORS)}")
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise SliceError(f"{where}: '{key}' takes a non-empty list of conditions")
        items = tuple(parse_condition(v, f"{where}[{i}]") for i, v in enumerate(value))
        return AllOf(items) if key == "all" else AnyOf(items)
    if key == "not":
        return Not(parse_condition(value, where))
    if isinstance(value, dict):
        if not value:
            raise SliceError(f"{where}: empty operator mapping")
        parts = tuple(_parse_operator(key, op, arg, f"{where}.{op}") for op, arg in value.items())
        return parts[0] if len(parts) == 1 else AllOf(parts)
    if value is None:
        raise SliceError(f"{where}: null value; use {{is_null: true}} to select missing values")
    if not isinstance(value, Scalar):
        raise SliceError(f"{where}: expected a value or an operator mapping, got {value!r}")
    _refuse_nan([value], where)
    return Compare(key, "eq", value, where)


def _refuse_nan(values, where: str) -> None:
    """YAML's ``.nan`` is a missing value, and missing values never satisfy a comparison
    (only ``is_null: true`` selects them): a NaN literal is refused, not silently
    compared (it would select nothing, or with ``not`` every row including the nulls)."""
    if any(isinstance(v, float) and math.isnan(v) for v in values):
        raise SliceError(f"{where}: .nan is a missing value; use {{is_null: true}} to "
                         f"select missing values")


def _parse_operator(column: str, op: Any, arg: Any, where: str) -> Compare:
    if op not in OPERATORS:
        raise SliceError(f"{where}: unknown operator {op!r} (valid: {', '.join(OPERATORS)})")
    if op in ("in", "not_in"):
        if not isinstance(arg, list) or not arg or not all(isinstance(a, Scalar) for a in arg):
            raise SliceError(f"{where}: '{op}' takes a non-empty list of values, got {arg!r}")
        _refuse_nan(arg, where)
        arg = tuple(arg)
    elif op in ("min", "max"):
        if isinstance(arg, bool) or not isinstance(arg, (int, float)):
            raise SliceError(f"{where}: '{op}' takes a number, got {arg!r}")
        _refuse_nan([arg], where)
    elif op == "matches":
        arg = compile_regex(arg, where)
    elif op == "contains":
        if not isinstance(arg, str) or not arg:
            raise SliceError(f"{where}: 'contains' takes a non-empty string, got {arg!r}")
    elif op == "is_null" and not isinstance(arg, bool):
        raise SliceError(f"{where}: 'is_null' takes true or false, got {arg!r}")
    return Compare(column, op, arg, where)


def comparisons(condition: Condition) -> list[Compare]:
    if isinstance(condition, Compare):
        return [condition]
    if isinstance(condition, Not):
        return comparisons(condition.item)
    return [cmp for item in condition.items for cmp in comparisons(item)]


def check_columns(condition: Condition, columns) -> None:
    """Fail naming the first comparison whose column the sample lacks."""
    available = set(columns) | set(DERIVED_COLUMNS)
    for cmp in comparisons(condition):
        if cmp.column not in available:
            raise SliceError(f"{cmp.where}: unknown column {cmp.column!r} "
                             f"(available: {', '.join(sorted(map(str, available)))})")


def with_derived_columns(frame: pd.DataFrame, text_column: str) -> pd.DataFrame:
    """Add word_count / char_count computed from the text, unless the sample has them."""
    extra = {name: fn(frame[text_column].astype("string"))
             for name, fn in DERIVED_COLUMNS.items() if name not in frame.columns}
    return frame.assign(**extra) if extra else frame


def evaluate(condition: Condition, frame: pd.DataFrame) -> np.ndarray:
    """A boolean mask over the frame's rows (columns already checked)."""
    if isinstance(condition, AllOf):
        return np.logical_and.reduce([evaluate(c, frame) for c in condition.items])
    if isinstance(condition, AnyOf):
        return np.logical_or.reduce([evaluate(c, frame) for c in condition.items])
    if isinstance(condition, Not):
        return ~evaluate(condition.item, frame)
    return _compare(condition, frame[condition.column])


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    return "text"


def _value_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, (int, float)) else "text"


def _compare(cmp: Compare, series: pd.Series) -> np.ndarray:
    kind = _kind(series)
    present = series.notna().to_numpy()
    if cmp.op == "is_null":
        return ~present if cmp.value else present
    if cmp.op in ("min", "max"):
        _require(kind == "number", cmp, f"'{cmp.op}' needs a numeric column, "
                                         f"{cmp.column!r} holds {kind}")
        values = series.to_numpy(dtype=float, na_value=np.nan)
        return (values >= cmp.value) if cmp.op == "min" else (values <= cmp.value)
    if cmp.op in ("matches", "contains"):
        _require(kind == "text", cmp, f"'{cmp.op}' needs a text column, "
                                      f"{cmp.column!r} holds {kind}")
        text = series.astype("string")
        if cmp.op == "contains":
            return text.str.contains(cmp.value, regex=False).fillna(False).to_numpy(dtype=bool)
        search = cmp.value.search  # RE2, one value at a time; a missing value never matches
        return np.fromiter((t is not None and search(t) is not None
                            for t in text.to_numpy(dtype=object, na_value=None)),
                           dtype=bool, count=len(text))
    values = (cmp.value,) if cmp.op == "eq" else cmp.value
    for value in values:
        _require(_value_kind(value) == kind, cmp,
                 f"compares column {cmp.column!r} ({kind}) with {value!r} "
                 f"({_value_kind(value)}); quote text values, use true/false for booleans")
    hits = series.isin(list(values)).to_numpy(dtype=bool) & present
    return ~hits & present if cmp.op == "not_in" else hits


def _require(ok: bool, cmp: Compare, message: str) -> None:
    if not ok:
        raise SliceError(f"{cmp.where}: {message}")
