"""What the HTML report shows, computed from summary.json and predictions.parquet only:
the opening sentence, heatmap colours (by verdict), forest-plot geometry with round
ticks, and the example rows tied to the failing checks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from validator.metrics import round_rating
from validator.outputs.advice import opening
from validator.outputs.first_screen import report_order
from validator.record.schema import CheckRecord, RunRecord

EXAMPLES_PER_SLICE = 3
EXAMPLES_TOTAL = 18
FOREST_WIDTH, FOREST_ROW, FOREST_LEFT = 640, 22, 230


def plain_summary(summary: RunRecord) -> str:
    """The opening sentence: the verdict and the most convincing failures."""
    return opening(summary)


VERDICT_HUE = {"fail": 0, "inconclusive": 38, "pass": 140}


def heat_colour(check: CheckRecord) -> str:
    """Background for a heatmap cell: the hue is the verdict (red fail, amber
    inconclusive, green pass), the depth the loss against the threshold (a secondary
    cue; the cell also states verdict, loss and CI in words)."""
    degradation, limit = check.degradation, check.max_drop
    if degradation is None:
        return "#e5e5e5"
    ratio = degradation / limit if limit > 0 else (math.inf if degradation > 0 else 0.0)
    depth = min(max(ratio, 0.0), 3.0) / 3.0
    return f"hsl({VERDICT_HUE[check.verdict]}, 75%, {93 - 13 * depth:.0f}%)"


def check_anchor(check: CheckRecord) -> str:
    return f"check-{check.candidate}-{check.slice}-{check.dimension}"


def _axis(rows: list[CheckRecord]) -> tuple[float, float]:
    """The x range: every degradation, zero and the thresholds, widened to take in the
    CIs only up to as much again on each side, so a tiny slice's wide interval does not
    squeeze the rest (its line is cut at the edge, marked by an arrow)."""
    core = [v for c in rows for v in (c.degradation, c.max_drop) if v is not None] + [0.0]
    low, high = min(core), max(core)
    span = (high - low) or 1.0
    ends = [v for c in rows for v in (c.ci_low, c.ci_high) if v is not None]
    low = max(min(ends, default=low), low - span) if ends else low
    high = min(max(ends, default=high), high + span) if ends else high
    pad = 0.04 * (high - low or 1.0)
    return low - pad, high + pad


def forest(summary: RunRecord, candidate: str, dimension: str = "_all") -> dict:
    """Geometry of a forest plot: one row per slice of one dimension with the
    degradation, its CI (cut at the axis' ends) and the slice's threshold."""
    rows = [c for c in summary.gate_checks
            if c.candidate == candidate and c.dimension == dimension]
    low, high = _axis(rows)
    scale = lambda v: FOREST_LEFT + (min(max(v, low), high) - low) / (high - low) * (
        FOREST_WIDTH - FOREST_LEFT - 20)
    plotted = []
    for i, c in enumerate(rows):
        y = 20 + i * FOREST_ROW
        plotted.append({"check": c, "y": y, "threshold_x": scale(c.max_drop),
                        "x": None if c.degradation is None else scale(c.degradation),
                        "x_low": None if c.ci_low is None else scale(c.ci_low),
                        "x_high": None if c.ci_high is None else scale(c.ci_high),
                        "cut_low": c.ci_low is not None and c.ci_low < low,
                        "cut_high": c.ci_high is not None and c.ci_high > high})
    ticks = [{"x": scale(v), "label": f"{v:g}"} for v in round_ticks(low, high)]
    return {"candidate": candidate, "dimension": dimension, "rows": plotted,
            "left": FOREST_LEFT,
            "zero_x": scale(0.0), "ticks": ticks, "width": FOREST_WIDTH,
            "height": 40 + len(rows) * FOREST_ROW, "axis_y": 20 + len(rows) * FOREST_ROW}


def forests(summary: RunRecord) -> dict[str, list[dict]]:
    """Per candidate: the pooled plot (_all), then one per dimension with a failing
    check, the most convincing first."""
    out: dict[str, list[dict]] = {}
    for scorer in summary.candidates:
        losing = [c.dimension for c in report_order(summary.gate_checks)
                  if c.candidate == scorer.name and c.dimension != "_all"
                  and c.verdict == "fail"]
        out[scorer.name] = [forest(summary, scorer.name, d)
                            for d in ["_all", *dict.fromkeys(losing)]]
    return out


def round_ticks(low: float, high: float, target: int = 6) -> list[float]:
    """Ticks at multiples of 1, 2 or 5 x 10^k inside [low, high], about ``target`` of them."""
    raw = (high - low) / target
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step)
    return [round(k * step, 10) + 0.0 for k in range(first, math.floor(high / step) + 1)]


def _watched(summary: RunRecord) -> dict[tuple[str, str], list[CheckRecord]]:
    """(candidate, slice) -> its single-dimension checks that fail or do not pass with
    a loss above half the threshold, in the report's order (failures first)."""
    found: dict = {}
    for c in report_order(summary.gate_checks):
        if c.dimension != "_all" and c.verdict != "pass" and \
                (c.degradation or 0) > c.max_drop / 2:
            found.setdefault((c.candidate, c.slice), []).append(c)
    return found


def _rated(value: float) -> str:
    return "–" if value != value else f"{value:.0f}"


def _direction(human: float, before: float, after: float) -> str:
    """Did the candidate's rounded rating move toward the human rating or away?"""
    if human != human:
        return "unrated"
    gap_before, gap_after = abs(before - human), abs(after - human)
    return "away" if gap_after > gap_before else "toward" if gap_after < gap_before \
        else "sideways"


def _group_rows(part: pd.DataFrame, summary: RunRecord, candidate: str,
                watched: list[int], seen: set[str]) -> tuple[list[dict], int]:
    """Rows whose rounded rating changed on a watched dimension, those moving away from
    the human rating first, then the largest change; texts already shown skipped."""
    scale, dims = summary.rubric.scale, summary.rubric.dimensions
    ref = round_rating(part[[f"{summary.reference.name}:{d}" for d in dims]]
                       .to_numpy(dtype=float), scale)
    cand = round_rating(part[[f"{candidate}:{d}" for d in dims]].to_numpy(dtype=float),
                        scale)
    human = round_rating(part[[f"human:{d}" for d in dims]].to_numpy(dtype=float), scale)
    away = (np.abs(cand - human) > np.abs(ref - human))[:, watched].any(axis=1)
    size = np.where(ref != cand, np.abs(ref - cand), 0.0)[:, watched].max(axis=1)
    order = np.flatnonzero(size > 0)
    order = order[np.lexsort((-size[order], ~away[order]))]
    rows = []
    for i in order:
        text = str(part["text"].iloc[i])
        if len(rows) == EXAMPLES_PER_SLICE or text.strip().lower() in seen:
            continue
        seen.add(text.strip().lower())
        rows.append({"id": part["id"].iloc[i], "text": text, "away": bool(away[i]), "dims": [
            {"name": d, "changed": bool(ref[i, j] != cand[i, j]), "watched": j in watched,
             "human": _rated(human[i, j]), "reference": _rated(ref[i, j]),
             "candidate": _rated(cand[i, j]),
             "direction": _direction(human[i, j], ref[i, j], cand[i, j])}
            for j, d in enumerate(dims)]})
    return rows, len(order)


def examples(summary: RunRecord, predictions: pd.DataFrame | None) -> list[dict]:
    """Per candidate and slice with a failing (or unresolved, losing) check: up to
    EXAMPLES_PER_SLICE rows whose rounded rating changed on those dimensions, worst
    first, each changed dimension marked toward or away from the human rating."""
    if predictions is None or "text" not in predictions.columns:
        return []
    groups, seen, total = [], set(), 0
    dims = summary.rubric.dimensions
    for (candidate, slice_name), checks in _watched(summary).items():
        if f"slice:{slice_name}" not in predictions.columns or total >= EXAMPLES_TOTAL:
            continue
        part = predictions[predictions[f"slice:{slice_name}"].astype(bool)]
        rows, changed = _group_rows(part, summary, candidate,
                                    [dims.index(c.dimension) for c in checks], seen)
        if rows:
            total += len(rows)
            groups.append({"candidate": candidate, "slice": slice_name, "changed": changed,
                           "verdict": checks[0].verdict,
                           "dimensions": [c.dimension for c in checks], "rows": rows})
    return groups


def percent(share: float) -> str:
    return f"{100 * share:.1f}%"


def blocked(scenario, candidate: str | None) -> float:
    """Share of a scenario's runs in which ``candidate`` (the run, for runs recorded
    without per-candidate shares) does not ship: failed, or inconclusive and blocking."""
    shares = (scenario.by_candidate or {}).get(candidate, scenario)
    return 1 - shares.passed


def operating_sentence(summary: RunRecord) -> str | None:
    """The gate's estimated error rates in one sentence (summary.json
    gate.operating_characteristics), or None for a run recorded without them. A drop is
    planted on the first candidate, so its catch rates are that candidate's."""
    gate = summary.gate
    oc = gate.operating_characteristics
    if oc is None:
        return None
    scenarios = {s.name: s for s in oc.scenarios}
    lossless, small = scenarios["lossless"], scenarios["smallest_slice"]
    on_slice = scenarios.get("twice_max_drop_on_slice")  # runs recorded before it: absent
    first = summary.candidates[0].name if summary.candidates else None
    correction = ("no correction" if gate.correction == "none"
                  else f"{gate.correction} correction")
    budget = "within" if oc.within_budget else "OVER"
    per_candidate = ", ".join(f"{name} {percent(1 - shares.passed)}"
                              for name, shares in (lossless.by_candidate or {}).items())
    blocked_lossless = (f"; a lossless candidate with the noise of each candidate here is "
                        f"blocked (failed, or inconclusive and blocking) in: {per_candidate}"
                        if per_candidate else
                        f" and leaves {percent(lossless.inconclusive)} of them inconclusive")
    slice_part = ("" if on_slice is None else f", by twice max_drop on {on_slice.slice} "
                  f"({on_slice.slice_rows} rows) {percent(blocked(on_slice, first))}")
    return (f"With policy {gate.policy} and {correction}, this gate falsely fails a "
            f"lossless candidate in about {percent(oc.false_fail)} of runs ({budget} the "
            f"false-fail budget of {percent(oc.false_fail_budget)}){blocked_lossless}. "
            f"It blocks {first} if it drops by max_drop everywhere "
            f"{percent(blocked(scenarios['max_drop'], first))} of the time, by twice "
            f"max_drop {percent(blocked(scenarios['twice_max_drop'], first))}{slice_part}, "
            f"and by {small.drop:g} ({gate.unit}) on {small.slice} ({small.slice_rows} rows) "
            f"{percent(blocked(small, first))} (estimated from {oc.runs} simulated runs of "
            f"this sample).")
