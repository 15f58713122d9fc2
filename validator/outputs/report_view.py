"""What the HTML report shows, computed from summary.json and predictions.parquet only:
the opening sentence, heatmap colours, forest-plot geometry with round ticks, per-slice
metric tables and the example rows whose rounded score changed."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd

from validator.metrics import round_rating
from validator.outputs.advice import convincing, opening
from validator.outputs.majority import AGREEMENT_METRICS, MAJORITY
from validator.record.schema import CheckRecord, RunRecord

EXAMPLES_PER_SLICE = 10
EXAMPLES_TOTAL = 400
FOREST_WIDTH, FOREST_ROW, FOREST_LEFT = 640, 22, 190
TOP_FAILURES = 10


def plain_summary(summary: RunRecord) -> str:
    """The opening sentence: the verdict and the most convincing failures."""
    return opening(summary)


def problems(summary: RunRecord) -> list[CheckRecord]:
    """Failing, then inconclusive checks, the largest degradation first."""
    return sorted((c for c in summary.checks if c.verdict != "pass"),
                  key=lambda c: (c.verdict != "fail", -(c.degradation or 0)))


def heat_colour(check: CheckRecord) -> str:
    """Background for a heatmap cell: green below zero, amber up to the threshold, red
    beyond it (the cell also states its verdict in words)."""
    degradation, limit = check.degradation, check.max_drop
    if degradation is None:
        return "#e5e5e5"
    ratio = degradation / limit if limit > 0 else (math.inf if degradation > 0 else 0.0)
    if ratio <= 0:
        return "#d8f3dc"
    if ratio <= 1:
        return f"hsl(45, 90%, {92 - 30 * ratio:.0f}%)"
    return f"hsl(0, 80%, {max(66, 86 - 5 * min(ratio, 4.0)):.0f}%)"


def check_anchor(check: CheckRecord) -> str:
    return f"check-{check.candidate}-{check.slice}-{check.dimension}"


def forest(summary: RunRecord, candidate: str) -> dict:
    """Geometry of a forest plot: one row per slice (dimension _all) with the
    degradation, its CI and the slice's threshold, on a shared x axis."""
    rows = [c for c in summary.gate_checks
            if c.candidate == candidate and c.dimension == "_all"]
    values = [v for c in rows for v in (c.ci_low, c.ci_high, c.degradation,
                                        c.max_drop, 0.0) if v is not None]
    low, high = min(values, default=-1.0), max(values, default=1.0)
    span = (high - low) or 1.0
    low, high = low - 0.05 * span, high + 0.05 * span
    scale = lambda v: FOREST_LEFT + (v - low) / (high - low) * (FOREST_WIDTH - FOREST_LEFT - 30)
    plotted = []
    for i, c in enumerate(rows):
        y = 20 + i * FOREST_ROW
        plotted.append({"check": c, "y": y, "threshold_x": scale(c.max_drop),
                        "x": None if c.degradation is None else scale(c.degradation),
                        "x_low": None if c.ci_low is None else scale(c.ci_low),
                        "x_high": None if c.ci_high is None else scale(c.ci_high)})
    ticks = [{"x": scale(v), "label": f"{v:g}"} for v in round_ticks(low, high)]
    return {"rows": plotted, "zero_x": scale(0.0), "ticks": ticks, "width": FOREST_WIDTH,
            "height": 40 + len(rows) * FOREST_ROW, "axis_y": 20 + len(rows) * FOREST_ROW}


def round_ticks(low: float, high: float, target: int = 6) -> list[float]:
    """Ticks at multiples of 1, 2 or 5 x 10^k inside [low, high], about ``target`` of them."""
    raw = (high - low) / target
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step)
    return [round(k * step, 10) + 0.0 for k in range(first, math.floor(high / step) + 1)]


def top_failures(summary: RunRecord) -> list[CheckRecord]:
    return convincing(summary)[:TOP_FAILURES]


def slice_tables(summary: RunRecord) -> dict[str, list[dict]]:
    """slice -> rows of (scorer, dimension, metric values) incl. the human ceiling; the
    majority-rating baseline is a value beside each agreement metric, not a row."""
    tables: dict = defaultdict(dict)
    majority: dict = {}
    for m in summary.metrics:
        if m.scorer == MAJORITY:
            majority[(m.slice, m.dimension, m.metric)] = m.value
            continue
        key = (m.scorer, m.dimension)
        row = tables[m.slice].setdefault(key, {"scorer": m.scorer,
                                               "dimension": m.dimension, "n": m.n})
        row[m.metric] = m.value
    for slice_name, rows in tables.items():
        for row in rows.values():
            for metric in AGREEMENT_METRICS:
                row[f"{metric}:majority"] = majority.get((slice_name, row["dimension"],
                                                          metric))
    return {name: list(rows.values()) for name, rows in tables.items()}


def _watched(summary: RunRecord) -> dict[tuple[str, str], list[CheckRecord]]:
    """(candidate, slice) -> its failing or borderline (degradation above half the
    threshold) checks of single dimensions, the slice with the largest loss first."""
    found: dict = defaultdict(list)
    for c in summary.gate_checks:
        if c.dimension != "_all" and (c.verdict != "pass"
                                      or (c.degradation or 0) > c.max_drop / 2):
            found[(c.candidate, c.slice)].append(c)
    return dict(sorted(found.items(), key=lambda kv: -max(c.degradation or 0 for c in kv[1])))


def _rated(value: float) -> str:
    return "–" if value != value else f"{value:.0f}"


def examples(summary: RunRecord, predictions: pd.DataFrame | None) -> list[dict]:
    """Per candidate and slice with a failing or borderline check: up to
    EXAMPLES_PER_SLICE rows whose rounded score changed on one of those dimensions, the
    largest change first, each with every dimension's rounded ratings (changed flagged)."""
    if predictions is None or "text" not in predictions.columns:
        return []
    scale, reference = summary.rubric.scale, summary.reference.name
    dims = summary.rubric.dimensions
    groups, total = [], 0
    for (candidate, slice_name), checks in _watched(summary).items():
        if f"slice:{slice_name}" not in predictions.columns or total >= EXAMPLES_TOTAL:
            continue
        part = predictions[predictions[f"slice:{slice_name}"]]
        ref = part[[f"{reference}:{d}" for d in dims]].to_numpy(dtype=float)
        cand = part[[f"{candidate}:{d}" for d in dims]].to_numpy(dtype=float)
        human = round_rating(part[[f"human:{d}" for d in dims]].to_numpy(dtype=float), scale)
        changed = round_rating(ref, scale) != round_rating(cand, scale)
        watched = [dims.index(c.dimension) for c in checks]
        strength = np.where(changed, np.abs(ref - cand), 0.0)[:, watched].max(axis=1)
        order = np.flatnonzero(strength > 0)
        order = order[np.argsort(-strength[order], kind="stable")]
        rows = []
        for i in order[:min(EXAMPLES_PER_SLICE, EXAMPLES_TOTAL - total)]:
            rows.append({"id": part["id"].iloc[i], "text": part["text"].iloc[i], "dims": [
                {"name": d, "changed": bool(changed[i, j]), "watched": j in watched,
                 "human": _rated(human[i, j]),
                 "reference": _rated(round_rating(ref[i, j], scale)),
                 "candidate": _rated(round_rating(cand[i, j], scale))}
                for j, d in enumerate(dims)]})
        total += len(rows)
        groups.append({"candidate": candidate, "slice": slice_name, "changed": len(order),
                       "dimensions": [c.dimension for c in checks], "rows": rows})
    return groups


def percent(share: float) -> str:
    return f"{100 * share:.1f}%"


def operating_sentence(summary: RunRecord) -> str | None:
    """The gate's estimated error rates in one sentence (summary.json
    gate.operating_characteristics), or None for a run recorded without them."""
    gate = summary.gate
    oc = gate.operating_characteristics
    if oc is None:
        return None
    scenarios = {s.name: s for s in oc.scenarios}
    lossless, small = scenarios["lossless"], scenarios["smallest_slice"]
    correction = ("no correction" if gate.correction == "none"
                  else f"{gate.correction} correction")
    budget = "within" if oc.within_budget else "OVER"
    return (f"With policy {gate.policy} and {correction}, this gate falsely fails a "
            f"lossless candidate in about {percent(oc.false_fail)} of runs ({budget} the "
            f"false-fail budget of {percent(oc.false_fail_budget)}) and leaves "
            f"{percent(lossless.inconclusive)} of them inconclusive; it fails a candidate "
            f"that drops by max_drop everywhere {percent(scenarios['max_drop'].fail)} of "
            f"the time, by twice max_drop {percent(scenarios['twice_max_drop'].fail)}, "
            f"and catches a {small.drop:g}-point drop ({gate.unit}) on "
            f"{small.slice} ({small.slice_rows} rows) {percent(small.fail)} of the "
            f"time (estimated from {oc.runs} simulated runs of this sample).")
