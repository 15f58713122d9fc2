"""Evenness of a slice's loss across rubric dimensions, and the optional gate on it.

concentration = the largest positive degradation / the sum of positive degradations
(1/k when k dimensions lose equally, 1.0 when one dimension carries all the loss;
undefined when nothing degrades). With ``gate.max_concentration`` a slice whose loss
is more concentrated than that fails: its ``_all`` check becomes a failure naming the
dimension, unless its slice has fewer than ``gate.min_rows`` rated rows or it already
failed. ``evenness`` labels every candidate x slice for the record.
"""

from __future__ import annotations

from dataclasses import replace

ALL_DIMENSIONS = "_all"


def concentration(degradations) -> float | None:
    positive = [v for v in degradations if v is not None and v == v and v > 0]
    total = sum(positive)
    return max(positive) / total if total > 0 else None


def apply_max_concentration(checks: list, gate, dimensions: list[str]) -> list:
    """Fail the ``_all`` check of every candidate x slice whose loss is concentrated
    beyond ``gate.max_concentration`` (checks as the gate builds them; unchanged when
    it is not set)."""
    limit = gate.max_concentration
    if limit is None:
        return checks
    grouped: dict = {}
    for check in checks:  # the gate metric's checks (a location guard's are in another unit)
        if check.dimension in dimensions and check.role == "gate":
            grouped.setdefault((check.candidate, check.slice), []).append(check)
    out = []
    for check in checks:
        parts = grouped.get((check.candidate, check.slice), [])
        share = concentration([c.degradation for c in parts])
        if check.dimension == ALL_DIMENSIONS and check.role == "gate" \
                and check.verdict != "fail" and check.n >= gate.min_rows \
                and share is not None and share > limit:
            worst = max(parts, key=lambda c: c.degradation)
            check = replace(check, verdict="fail",
                            reason=f"loss concentrated in {worst.dimension}: concentration "
                                   f"{share:.2f} exceeds max_concentration {limit:g}")
        out.append(check)
    return out


EVEN, CONCENTRATED = 0.35, 0.6


def evenness(checks: list[dict], dimensions: list[str]) -> list[dict]:
    """Per candidate and slice: is the loss spread across dimensions or concentrated?
    concentration = the largest positive degradation / the sum of positive degradations
    (1/k when k dimensions lose equally, 1.0 when one dimension carries it all)."""
    grouped: dict = {}
    for c in checks:
        if c["dimension"] in dimensions and c["role"] == "gate":  # not a guard's unit
            grouped.setdefault((c["candidate"], c["slice"]), []).append(c["degradation"])
    out = []
    for (candidate, slice_name), values in grouped.items():
        positive = [v for v in values if v is not None and v > 0]
        share = concentration(values)
        label = ("no loss" if share is None else "even" if share <= EVEN
                 else "concentrated" if share >= CONCENTRATED else "mixed")
        out.append({"candidate": candidate, "slice": slice_name, "concentration": share,
                    "dimensions_degraded": len(positive), "label": label})
    return out
