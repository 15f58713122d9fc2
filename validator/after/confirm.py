"""Re-measure discovered slices on the confirmation half, with the gate's own statistics.

With human ratings, each slice becomes a gate check on the confirmation rows: the
gate's metrics, paired bootstrap CI, p-value (McNemar for agreement metrics) and
policy (the run's ``gate`` settings, ``min_rows`` from discovery), with
Benjamini-Hochberg over the slices found for the candidate. A slice is confirmed when
that check fails: the gate, had the slice been defined, would have failed it.

A check alone would confirm every sizeable group of a candidate that loses evenly
everywhere, so a slice must also be worse than the rest: the excess of the search
signal inside the slice over the other confirmation rows (a two-sample z-test of two
ratio estimates, Benjamini-Hochberg over the slices) must be positive and significant.

Without ratings, that excess of the rounded-rating change rate (percentage points)
is the effect, and it alone confirms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from validator.config import Config, parse_config
from validator.judge.gate import FAIL, adjust, apply_correction, build_checks
from validator.metrics import compute_metrics

OVERALL = "all"


def gate_config(run, candidate: str, min_rows: int) -> Config:
    """The run's gate settings as a config for one candidate (no slice overrides: the
    discovered slices have none; no correction: it is applied to the found slices)."""
    gate = run.gate_settings()
    gate["overrides"] = [o for o in gate.get("overrides", []) if o.get("slice") is None
                         and o.get("candidate") in (None, candidate)]
    gate.update(min_rows=min_rows, correction="none")
    scorer = {"backend": "columns", "columns": "{dimension}"}
    raw = {"sample": {"path": "unused.csv"},
           "rubric": {"scale": list(run.scale), "dimensions": {d: d for d in run.dimensions}},
           "reference": {"name": run.reference, **scorer},
           "candidates": [{"name": candidate, **scorer}], "gate": gate, "seed": run.seed}
    return parse_config(raw, str(run.directory / "summary.json"), Path("."))


def confirm_labelled(run, table: pd.DataFrame, candidate: str, dimension: str,
                     masks: dict[str, np.ndarray], min_rows: int, signal) -> tuple[dict, dict]:
    """(per slice: the check's figures and the excess of the search signal over the
    other confirmation rows; the overall check). Confirmed when the check fails and the
    excess is significant: worse than max_drop, and worse than the rest."""
    human = pd.DataFrame({d: table[f"human:{d}"].to_numpy(float) for d in run.dimensions})
    scores = {name: table[[f"{name}:{d}" for d in run.dimensions]].to_numpy(float)
              for name in (run.reference, candidate)}
    frame = pd.DataFrame({OVERALL: np.ones(len(table), dtype=bool), **masks})
    config = gate_config(run, candidate, min_rows)
    metrics = compute_metrics(human, scores, frame, run.scale)
    checks, _ = build_checks(metrics, human, scores, frame, config)
    checks = [c for c in checks if c.dimension == dimension]
    overall = next(c for c in checks if c.slice == OVERALL)
    found = apply_correction([c for c in checks if c.slice != OVERALL],
                             config.gate.model_copy(update={"correction": "bh"}))
    excess = excess_over_rest(*signal, masks, config.gate.confidence)
    figures = {}
    for check in found:
        figures[check.slice] = {**_figures(check), **excess[check.slice]}
        figures[check.slice]["confirmed"] = (check.verdict == FAIL
                                             and excess[check.slice]["excess_confirmed"])
    return figures, _figures(overall)


def _figures(check) -> dict:
    figures = check.as_dict()
    return {"n_confirm": figures["n"], "reference": figures["reference"],
            "candidate_value": figures["candidate_value"],
            "degradation": figures["degradation"], "ci_low": figures["ci_low"],
            "ci_high": figures["ci_high"], "p_value": figures["p_value"],
            "p_value_adjusted": figures["p_value_adjusted"],
            "gate_verdict": figures["verdict"], "reason": figures["reason"],
            "confirmed": figures["verdict"] == FAIL}


def _rate(sums: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """(sum / weight, its variance by the delta method for a ratio estimator)."""
    total = weights.sum()
    rate = sums.sum() / total
    return float(rate), float(((sums - rate * weights) ** 2).sum() / total ** 2)


def excess_over_rest(sums: np.ndarray, weights: np.ndarray, masks: dict[str, np.ndarray],
                     confidence: float) -> dict[str, dict]:
    """Per slice: how much larger the signal's rate (sum / weight) is inside the slice
    than in the other rows, with a normal CI and two-sided p-value (two independent
    ratio estimates, delta-method variances: a bootstrap of the rest, tens of thousands
    of rows per slice, would cost seconds each) and Benjamini-Hochberg over the slices."""
    alpha = 1 - confidence
    z = norm.ppf(1 - alpha / 2)
    out = {}
    for name, mask in masks.items():
        inside, outside = mask & (weights > 0), ~mask & (weights > 0)
        figures = {"excess": None, "excess_ci_low": None, "excess_ci_high": None,
                   "excess_p_value": float("nan")}
        if inside.any() and outside.any():
            (rate_in, var_in), (rate_out, var_out) = (_rate(sums[rows], weights[rows])
                                                      for rows in (inside, outside))
            excess, se = rate_in - rate_out, float(np.sqrt(var_in + var_out))
            p_value = float(2 * norm.sf(abs(excess) / se)) if se > 0 else \
                float(excess == 0)  # no spread: equal rates or a certain difference
            figures = {"excess": excess, "excess_ci_low": excess - z * se,
                       "excess_ci_high": excess + z * se, "excess_p_value": p_value}
        out[name] = figures
    adjusted = adjust([f["excess_p_value"] for f in out.values()], "bh")
    for figures, p in zip(out.values(), adjusted):
        figures["excess_p_value"] = _finite(figures["excess_p_value"])
        figures["excess_p_adjusted"] = _finite(p)
        figures["excess_confirmed"] = bool(figures["excess"] is not None and
                                           figures["excess"] > 0 and p < alpha)
    return out


def _finite(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def confirm_label_free(sums: np.ndarray, weights: np.ndarray, masks: dict[str, np.ndarray],
                       confidence: float, min_rows: int) -> dict:
    """Per slice: the excess change rate as its degradation; confirmed when positive,
    significant after BH, and the slice has min_rows confirmation rows."""
    out = {}
    for name, excess in excess_over_rest(sums, weights, masks, confidence).items():
        n = int((masks[name] & (weights > 0)).sum())
        out[name] = {"n_confirm": n, "degradation": excess["excess"],
                     "ci_low": excess["excess_ci_low"], "ci_high": excess["excess_ci_high"],
                     "p_value": excess["excess_p_value"],
                     "p_value_adjusted": excess["excess_p_adjusted"],
                     "confirmed": excess["excess_confirmed"] and n >= min_rows}
    return out
