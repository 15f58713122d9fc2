"""The predicates discovery searches, each one a slice-DSL condition.

Every feature is written as the condition a slice file would hold and its rows are
selected by the slice DSL itself, so a discovered slice written to YAML selects
exactly the rows it was found on. Features come in families whose values exclude
each other (one column's values, one length bin, a text property present or absent);
a discovered slice takes at most one value per family.

- metadata columns of the sample: text and boolean values, numbers with few values
  (equality), other numbers binned by quantiles; missing values as ``is_null``;
- the slice DSL's derived columns (``word_count``, ``char_count``), binned by quantiles;
- properties of the text: digits, currency signs, URLs, emoji, exclamation marks,
  a word in capitals.

Quantile edges are chosen on the search half only (see discover.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from validator.data.slices.dsl import DERIVED_COLUMNS, evaluate, parse_condition

BINS = 4               # quantile bins per numeric column
MAX_LEVELS = 30        # text columns with more distinct values are not categories
FEW_NUMBERS = 6        # numeric columns with at most this many values are categories
# name -> (what it means, the condition on the text column); patterns that Python's re
# and RE2 read alike, with emoji written as literal characters
TEXT_PROPERTIES = {
    "digits": ("has digits", {"matches": "[0-9]"}),
    "currency": ("has a currency sign", {"matches": "[$€£¥]"}),
    "url": ("has a URL", {"matches": "(?i)https?://|www\\."}),
    "emoji": ("has an emoji", {"matches": "[\u2600-\u27bf\U0001f300-\U0001faff]"}),
    "exclamation": ("has an exclamation mark", {"contains": "!"}),
    "capitals": ("has a word in capitals", {"matches": "\\b[A-Z]{3,}\\b"}),
}


@dataclass(frozen=True)
class Feature:
    family: str
    label: str          # for people: "channel = sms", "word_count 4-7", "has digits"
    slug: str           # for slice names: "channel-sms"
    condition: dict     # the slice-DSL condition


def _slug(value) -> str:
    text = "".join(ch if ch.isalnum() else "-" for ch in str(value).lower())
    return "-".join(part for part in text.split("-") if part)[:30] or "value"


def _plain(value):
    """numpy scalars to YAML-friendly Python values."""
    return value.item() if isinstance(value, np.generic) else value


def _category(column: str, series: pd.Series) -> list[Feature]:
    values = sorted(series.dropna().unique().tolist(), key=str)
    features = [Feature(column, f"{column} = {v}", f"{column}-{_slug(v)}",
                        {column: _plain(v)}) for v in values]
    if series.isna().any():
        features.append(Feature(column, f"{column} missing", f"{column}-missing",
                                {column: {"is_null": True}}))
    return features


def _short(value: float):
    """A bin bound for YAML: whole numbers as int."""
    return int(value) if float(value).is_integer() else float(value)


def _edges(values: np.ndarray) -> list[tuple[float | None, float | None]]:
    """(min, max) bounds of up to BINS quantile bins, inclusive as the DSL reads them:
    whole numbers split between integers, other numbers at a point between two values
    that no value equals."""
    values = np.sort(values[~np.isnan(values)])
    if len(values) == 0 or values[0] == values[-1]:
        return []
    cuts = np.unique(np.quantile(values, np.arange(1, BINS) / BINS, method="lower"))
    distinct = np.unique(values)
    bounds, low = [], None
    for cut in cuts:
        above = distinct[distinct > cut]
        if not len(above):
            continue
        if np.all(values == np.floor(values)):
            upper, next_low = cut, above[0]
        else:
            upper = next_low = _between(cut, above[0])
        bounds.append((low, _short(upper)))
        low = _short(next_low)
    bounds.append((low, None))
    return bounds


def _between(low: float, high: float) -> float:
    """A short decimal strictly between two values (their midpoint when none is)."""
    for digits in range(1, 16):
        candidate = float(f"{(low + high) / 2:.{digits}g}")
        if low < candidate < high:
            return candidate
    return (low + high) / 2


def _bins(column: str, series: pd.Series, search: np.ndarray) -> list[Feature]:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    features = []
    for low, high in _edges(values[search]):
        bound = {k: v for k, v in (("min", low), ("max", high)) if v is not None}
        text = (f"{column} {low}-{high}" if low is not None and high is not None
                else f"{column} <= {high}" if high is not None else f"{column} >= {low}")
        features.append(Feature(column, text, _slug(text.replace("<=", "max")
                                                    .replace(">=", "min")), {column: bound}))
    if series.isna().any():
        features.append(Feature(column, f"{column} missing", f"{column}-missing",
                                {column: {"is_null": True}}))
    return features


def column_features(frame: pd.DataFrame, column: str, search: np.ndarray) -> list[Feature]:
    """The features of one metadata or derived column ([] when it cannot split rows)."""
    series = frame[column]
    distinct = series.nunique(dropna=True)
    if distinct + int(series.isna().any()) < 2:
        return []
    if pd.api.types.is_bool_dtype(series):
        return _category(column, series)
    if pd.api.types.is_numeric_dtype(series):
        return _category(column, series) if distinct <= FEW_NUMBERS and column not in \
            DERIVED_COLUMNS else _bins(column, series, search)
    present = series.dropna()
    if distinct <= MAX_LEVELS and present.map(lambda v: isinstance(v, str)).all():
        return _category(column, series)
    return []


def text_features(text_column: str) -> list[Feature]:
    features = []
    for name, (meaning, operator) in TEXT_PROPERTIES.items():
        condition = {text_column: dict(operator)}
        features += [Feature(name, meaning, name, condition),
                     Feature(name, meaning.replace("has a ", "no ").replace("has an ", "no ")
                             .replace("has ", "no "), f"no-{name}", {"not": condition})]
    return features


def build_features(frame: pd.DataFrame, columns: list[str], text_column: str,
                   search: np.ndarray) -> list[Feature]:
    """Every feature of the given metadata columns, the derived columns and the text."""
    features = []
    for column in [*columns, *(c for c in DERIVED_COLUMNS if c not in columns)]:
        features += column_features(frame, column, search)
    return features + text_features(text_column)


def feature_masks(features: list[Feature], frame: pd.DataFrame) -> np.ndarray:
    """(rows, features) booleans, each column selected by the slice DSL."""
    masks = np.zeros((len(frame), len(features)), dtype=bool)
    evaluated: dict[str, np.ndarray] = {}
    for j, feature in enumerate(features):
        negated = repr(feature.condition.get("not"))
        if list(feature.condition) == ["not"] and negated in evaluated:
            masks[:, j] = ~evaluated[negated]  # what the DSL's `not` computes, without
        else:                                  # running the regex over the texts again
            masks[:, j] = evaluate(parse_condition(feature.condition, feature.label), frame)
        evaluated[repr(feature.condition)] = masks[:, j]
    return masks
