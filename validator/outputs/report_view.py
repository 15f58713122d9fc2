"""What the HTML report shows, computed from summary.json and predictions.parquet only:
the plain-language summary, heatmap colours, forest-plot geometry, per-slice metric
tables and the example rows whose rounded score changed."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd

from validator.metrics import round_rating
from validator.record import CheckRecord, RunRecord

EXAMPLES_PER_SLICE = 20
EXAMPLES_TOTAL = 1000
FOREST_WIDTH, FOREST_ROW, FOREST_LEFT = 640, 22, 190


def plain_summary(summary: RunRecord) -> str:
    counts, gate = summary.counts, summary.gate
    candidates = [s.name for s in summary.candidates]
    slices = len(summary.slices)
    head = (f"The gate {summary.verdict.upper()}ED" if summary.verdict != "inconclusive"
            else "The gate could not decide (INCONCLUSIVE)")
    text = (f"{head}. {len(candidates)} candidate(s) ({', '.join(candidates)}) were compared "
            f"with the reference {summary.reference.name} on {summary.sample.rows} "
            f"gate rows, {slices} slices and {len(summary.rubric.dimensions)} rubric "
            f"dimensions, using {gate.metric} with a {gate.policy} policy. "
            f"{counts.fail} checks failed, {counts.inconclusive} were inconclusive and "
            f"{counts.passed} passed.")
    for name in candidates:
        checks = [c for c in summary.checks if c.candidate == name
                  and c.degradation is not None]
        overall = next((c for c in checks if c.slice == "all"
                        and c.dimension == "_all"), None)
        worst = max(checks, key=lambda c: c.degradation / max(c.max_drop, 1e-9),
                    default=None)
        if overall is not None and worst is not None:
            text += (f" {name} loses {overall.degradation:.2f} {gate.unit} overall; its "
                     f"worst check is {worst.slice} / {worst.dimension} at "
                     f"{worst.degradation:.2f} (threshold {worst.max_drop:g}).")
    return text


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
    return f"hsl(0, 75%, {max(50, 85 - 8 * min(ratio, 4.4)):.0f}%)"


def check_anchor(check: CheckRecord) -> str:
    return f"check-{check.candidate}-{check.slice}-{check.dimension}"


def forest(summary: RunRecord, candidate: str) -> dict:
    """Geometry of a forest plot: one row per slice (dimension _all) with the
    degradation, its CI and the slice's threshold, on a shared x axis."""
    rows = [c for c in summary.checks
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
    ticks = [{"x": scale(v), "label": f"{v:.3g}"} for v in np.linspace(low, high, 5)]
    return {"rows": plotted, "zero_x": scale(0.0), "ticks": ticks, "width": FOREST_WIDTH,
            "height": 40 + len(rows) * FOREST_ROW, "axis_y": 20 + len(rows) * FOREST_ROW}


def slice_tables(summary: RunRecord) -> dict[str, list[dict]]:
    """slice -> rows of (scorer, dimension, metric values) incl. the human ceiling."""
    tables: dict = defaultdict(dict)
    for m in summary.metrics:
        key = (m.scorer, m.dimension)
        row = tables[m.slice].setdefault(key, {"scorer": m.scorer,
                                               "dimension": m.dimension, "n": m.n})
        row[m.metric] = m.value
    return {name: list(rows.values()) for name, rows in tables.items()}


def examples(summary: RunRecord, predictions: pd.DataFrame | None) -> list[dict]:
    """Rows whose rounded score changed between reference and candidate, for every
    failing or borderline (degradation above half its threshold) slice and dimension."""
    if predictions is None or "text" not in predictions.columns:
        return []
    scale = summary.rubric.scale
    reference = summary.reference.name
    wanted = [c for c in summary.checks if c.dimension != "_all" and (
        c.verdict != "pass" or (c.degradation or 0) > c.max_drop / 2)]
    rows, total = [], 0
    for c in sorted(wanted, key=lambda c: -(c.degradation or 0)):
        column = f"slice:{c.slice}"
        if column not in predictions.columns:
            continue
        part = predictions[predictions[column]]
        ref = part[f"{reference}:{c.dimension}"].to_numpy()
        cand = part[f"{c.candidate}:{c.dimension}"].to_numpy()
        changed = np.flatnonzero(round_rating(ref, scale) != round_rating(cand, scale))
        changed = changed[np.argsort(-np.abs(ref - cand)[changed], kind="stable")]
        for i in changed[:EXAMPLES_PER_SLICE]:
            record = part.iloc[i]
            rows.append({"candidate": c.candidate, "slice": c.slice,
                         "dimension": c.dimension, "id": record["id"],
                         "text": record["text"], "human": record[f"human:{c.dimension}"],
                         "reference": ref[i], "candidate_value": cand[i]})
            total += 1
            if total >= EXAMPLES_TOTAL:
                return rows
    return rows


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
