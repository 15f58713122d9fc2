"""How the report, summary.md and junit.xml write numbers: units on every figure,
thousands separators, p-values as "< 0.001", intervals in words, a check's threshold
in its unit and the label of a location guard's check."""

from __future__ import annotations

from validator.record.schema import CheckRecord

P_FLOOR = 0.001


def missing(value) -> bool:
    return value is None or value != value


def num(value, digits: int = 2, suffix: str = "") -> str:
    return "n/a" if missing(value) else f"{value:,.{digits}f}{suffix}"


def count(value) -> str:
    """An integer with thousands separators: 136,947,419."""
    return "n/a" if missing(value) else f"{int(value):,}"


def megabytes(value) -> str:
    return num(None if value is None else value / 1e6, 1)


def pvalue(value) -> str:
    """p-values below 0.001 as "< 0.001", others with three decimals."""
    if missing(value):
        return "n/a"
    return f"< {P_FLOOR:g}" if value < P_FLOOR else f"{value:.3f}"


def unit_short(unit: str) -> str:
    """"percentage points" -> "pp" (the report defines the short form once)."""
    return {"percentage points": "pp"}.get(unit, unit)


def points(value, unit: str, digits: int = 1) -> str:
    return "n/a" if missing(value) else f"{value:,.{digits}f} {unit_short(unit)}"


def interval(low, high, unit: str, confidence: float, digits: int = 1) -> str:
    """"95% CI 9.1 to 25.3 pp" (or "no interval")."""
    if missing(low) or missing(high):
        return "no interval"
    return f"{confidence:.0%} CI {low:,.{digits}f} to {high:,.{digits}f} {unit_short(unit)}"


def seconds(value) -> str:
    if missing(value):
        return "n/a"
    minutes, rest = divmod(float(value), 60)
    return f"{int(minutes)} min {rest:.0f} s" if minutes else f"{rest:.1f} s"


def threshold(check: CheckRecord) -> str:
    """max_drop in the check's unit: "0.02 correlation", "1 percentage points"."""
    return f"{check.max_drop:g} {check.unit}" if check.unit else f"{check.max_drop:g}"


def guard_suffix(check: CheckRecord) -> str:
    """Names a location guard's check (its metric), so that it reads apart from the
    gate metric's check of the same slice and dimension."""
    return "" if check.role == "gate" else f" (location guard: {check.metric})"
