"""Operating characteristics: how often this gate, as configured, fails a candidate
with no true drop, and how often it catches a real one, for this run's slices,
dimensions, metric, policy and correction.

Estimated by simulation from the run's own bootstrap (the "bootstrap world"): the
observed degradations are taken as the truth, and one resample's deviation from them,
(resampled degradation - observed degradation), as one run's sampling error. A
simulated run draws one resample per slice (the same draw for every check of the
slice, so a slice's checks move together as they do in reality; different slices are
drawn independently, which overstates the chance that some check fails by a little
when slices overlap), adds a planted true degradation per check, shifts each check's
CI with it, and applies the gate's own rules (policy, min_rows, correction within each
candidate's checks, run verdict, and under ``on_inconclusive: warn`` the rule that an
inconclusive check whose whole CI lies above max_drop, and that judge.gate.screened_losses
finds beyond it, still blocks). With an unrated
pool the resamples draw pool rows too (validator.judge.design_estimates), so a run's
error counts both sampling phases. The planted drops are made by the first candidate;
other candidates are lossless. Nothing is re-scored, so this costs a fraction of a
second.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from validator.config import GateConfig
from validator.judge.gate import (FAIL, GATE_ROLE, INCONCLUSIVE, PASS, Check, GateResult,
                                  adjust_by_candidate, corrected_verdicts, policy_verdicts,
                                  run_verdicts, screened_losses, twin_index)
from validator.metrics import ALL_DIMENSIONS, get_metric
from validator.judge.stats import p_exceeds

RUNS = 1000            # simulated runs per scenario: Monte Carlo SE <= 1.6 points
EFFECT_MULTIPLE = 6    # the drop planted on the smallest gated slice, in max_drops
FLIP_SIZE = 100.0      # how far one flipped row moves an agreement metric's row value
LARGE_SLICE_ROWS = 400 # a slice this large (scored rows, pool included) should catch
                       # twice max_drop (issue 23's target: in >= 90% of runs)


def _fixed_verdicts(checks: list[Check], slice_rows: dict[str, int],
                    gate: GateConfig) -> np.ndarray:
    """Verdicts that no sampling error can change ('' where the policy decides)."""
    fixed = []
    for c in checks:
        if slice_rows[c.slice] == 0:
            fixed.append(FAIL)
        elif c.n < gate.min_rows or math.isnan(c.degradation) or math.isnan(c.ci_low):
            fixed.append(INCONCLUSIVE)
        else:
            fixed.append("")
    return np.array(fixed, dtype=object)


def _errors(checks: list[Check], resamples: list[np.ndarray], rng: np.random.Generator,
            decided: np.ndarray) -> np.ndarray:
    """(RUNS, checks) sampling errors: per slice one resample index per run."""
    errors = np.zeros((RUNS, len(checks)))
    by_slice: dict[str, list[int]] = {}
    for i, c in enumerate(checks):
        if decided[i] and len(resamples[i]):  # a copied slice moves with its first
            by_slice.setdefault(c.same_rows_as or c.slice, []).append(i)
    for columns in by_slice.values():
        matrix = np.column_stack([resamples[i] for i in columns])
        deviation = np.nan_to_num(matrix - np.array([checks[i].degradation for i in columns]))
        errors[:, columns] = deviation[rng.integers(0, len(matrix), RUNS)]
    return errors


def widening(checks: list[Check], truth: np.ndarray, flips: bool) -> np.ndarray:
    """How much a planted drop widens each check's sampling error. An agreement metric
    loses points by rows flipping (a row's value moves by 100), which adds the variance
    of those flips, truth * (100 - truth) / rated pairs, to the bootstrap's; a drop in
    any other metric is taken as a shift that adds none."""
    sd = np.nan_to_num([c.bootstrap_sd for c in checks])
    if not flips:
        return np.ones(len(checks))
    dimensions = len({c.dimension for c in checks} - {ALL_DIMENSIONS})
    pairs = np.array([c.n * (dimensions if c.dimension == ALL_DIMENSIONS else 1)
                      for c in checks], dtype=float)
    theta = np.clip(truth, 0, FLIP_SIZE)
    added = np.where(pairs > 0, theta * (FLIP_SIZE - theta) / np.maximum(pairs, 1), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, np.sqrt(sd ** 2 + added) / sd, 1.0)


def simulate(checks: list[Check], errors: np.ndarray, truth: np.ndarray,
             fixed: np.ndarray, gate: GateConfig, flips: bool) -> dict:
    """Shares of simulated runs the gate fails, leaves inconclusive and passes when each
    check's true degradation is ``truth``; and the same for each candidate's own checks
    (``by_candidate``: the candidate's verdict, what ships or not)."""
    observed = np.nan_to_num([c.degradation for c in checks])
    wider = widening(checks, truth, flips)
    below = (observed - np.array([c.ci_low for c in checks])) * wider
    above = (np.array([c.ci_high for c in checks]) - observed) * wider
    estimate = np.nan_to_num(truth + errors * wider)
    max_drop = np.array([c.max_drop for c in checks])
    verdicts = policy_verdicts(gate.policy, estimate, estimate - below, estimate + above,
                               np.array([c.detectable_degradation for c in checks]) * wider,
                               max_drop).astype(object)
    verdicts = np.where(fixed != "", fixed, verdicts)
    tested = ~np.isnan([c.p_value_max_drop for c in checks])
    sd = np.array([c.bootstrap_sd for c in checks]) * wider
    p = np.where(tested, p_exceeds(estimate, sd, max_drop), np.nan)
    names, twins = [c.candidate for c in checks], twin_index(checks)
    adjusted = adjust_by_candidate(p, names, gate.correction, twins)
    verdicts = corrected_verdicts(verdicts, adjusted,
                                  np.array([c.n for c in checks]), gate)
    likely = ((verdicts == INCONCLUSIVE) & (estimate - below > max_drop)  # likely_loss
              & screened_losses(p, names, gate, twins))
    shares = verdict_shares(run_verdicts(verdicts, gate.on_inconclusive, likely))
    owners = np.array([c.candidate for c in checks], dtype=object)
    by_candidate = {name: verdict_shares(run_verdicts(verdicts[:, owners == name],
                                                      gate.on_inconclusive,
                                                      likely[:, owners == name]))
                    for name in dict.fromkeys(owners)}
    return {**shares, "fail_standard_error": math.sqrt(shares[FAIL] * (1 - shares[FAIL])
                                                       / RUNS),
            "by_candidate": by_candidate}


def verdict_shares(runs: np.ndarray) -> dict[str, float]:
    return {v: float((runs == v).mean()) for v in (FAIL, INCONCLUSIVE, PASS)}


def smallest_gated_slice(slice_rows: dict[str, int], min_rows: int) -> str:
    gated = {name: rows for name, rows in slice_rows.items() if rows >= min_rows}
    return min(gated or slice_rows, key=lambda name: (gated or slice_rows)[name])


def large_slice(slice_rows: dict[str, int], min_rows: int) -> str:
    """The smallest slice of at least LARGE_SLICE_ROWS rows (and min_rows), or the
    largest slice when none is that large."""
    large = {name: rows for name, rows in slice_rows.items()
             if rows >= max(min_rows, LARGE_SLICE_ROWS)}
    if large:
        return min(large, key=large.get)
    return max(slice_rows, key=slice_rows.get)


def dilution(masks: pd.DataFrame, target: str, checks: list[Check]) -> np.ndarray:
    """Each check's share of its slice's rows inside ``target``: a drop planted on the
    target reaches an overlapping slice diluted by that share."""
    in_target = masks[target].to_numpy()
    share = {name: (in_target & masks[name].to_numpy()).sum() / max(int(masks[name].sum()), 1)
             for name in masks.columns}
    return np.array([share[c.slice] for c in checks])


def operating_characteristics(gate_result: GateResult, masks: pd.DataFrame,
                              gate: GateConfig, seed: int) -> dict:
    checks, resamples = gate_result.checks, gate_result.resamples
    slice_rows = {name: int(masks[name].sum()) for name in masks.columns}
    fixed = _fixed_verdicts(checks, slice_rows, gate)
    rng = np.random.default_rng([seed, 0x0C])
    errors = _errors(checks, resamples, rng, fixed == "")
    first = np.array([c.candidate == checks[0].candidate for c in checks]) if checks \
        else np.zeros(0, dtype=bool)
    gated = np.array([c.role == GATE_ROLE for c in checks], dtype=bool)  # effect's unit
    max_drop = np.array([c.max_drop for c in checks])
    smallest = smallest_gated_slice(slice_rows, gate.min_rows)
    large = large_slice(slice_rows, gate.min_rows)
    effect = EFFECT_MULTIPLE * gate.max_drop
    scenarios = [
        ("lossless", "no true drop on any check", None, 0.0, np.zeros(len(checks))),
        ("max_drop", "the first candidate drops by each check's max_drop everywhere",
         None, gate.max_drop, first * max_drop),
        ("twice_max_drop", "the first candidate drops by twice each check's max_drop "
         "everywhere", None, 2 * gate.max_drop, first * 2 * max_drop),
        ("twice_max_drop_on_slice", f"the first candidate drops by twice max_drop on "
         f"{large} ({slice_rows[large]} rows), diluted in the slices that overlap it", large, 2 * gate.max_drop,
         first * gated * 2 * max_drop * dilution(masks, large, checks)),
        ("smallest_slice", f"the first candidate drops by {effect:g} on the smallest gated "
         f"slice, {smallest} (diluted in the slices that overlap it)", smallest, effect,
         first * gated * effect * dilution(masks, smallest, checks)),
    ]
    flips = get_metric(gate.metric).flip_tolerance is not None
    results = []
    for name, description, slice_name, drop, truth in scenarios:
        results.append({"name": name, "description": description, "slice": slice_name,
                        "slice_rows": None if slice_name is None else slice_rows[slice_name],
                        "drop": drop, **simulate(checks, errors, truth, fixed, gate, flips)})
    lossless = results[0]
    return {"runs": RUNS, "method": "simulated from this run's paired bootstrap: "
                                    "observed degradations as the truth, one resample per "
                                    "slice as a run's sampling error, the gate's own rules",
            "false_fail": lossless[FAIL],
            "false_block": lossless[FAIL] + lossless[INCONCLUSIVE],
            "false_fail_budget": gate.false_fail_budget,
            "within_budget": lossless[FAIL] <= gate.false_fail_budget,
            "scenarios": results}
