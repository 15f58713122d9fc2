"""The gate: one check per candidate x slice x dimension, and the run's verdict.

Each check carries the paired bootstrap CI of its degradation, a p-value of "no
change" (McNemar's exact test for agreement metrics), a one-sided p-value of "the
degradation is within max_drop" (``p_value_max_drop``), the smallest degradation its
slice could detect, and flip counts. The policy turns them into a verdict:

- ``point``: fail when the degradation exceeds max_drop; a slice too small to resolve
  its threshold (detectable degradation > max_drop) is inconclusive, not a pass.
- ``confident`` (the default): fail when the whole CI lies above max_drop, pass when it
  lies below, otherwise inconclusive.
- ``non_inferiority``: pass only when the CI's upper bound is below max_drop.

With ``correction`` (holm, the default, or bh) a ``point`` or ``confident`` failure must
also reject "degradation <= max_drop" after adjusting those p-values over all checks of
the run, at the level ``false_fail_budget``; otherwise it is inconclusive. Holm keeps the
chance that a run fails any check whose true degradation is within max_drop under the
budget. A ``non_inferiority`` failure is never downgraded. A configured slice with no
rows fails; fewer than min_rows rated rows is inconclusive. An inconclusive check says
how many rated rows would decide it. The run fails closed: it exits 0 only when no
check failed and some check could decide, and is inconclusive on a CPU lacking an
instruction set that production serves with (``serving.isa``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import norm

from validator.config import Config, GateConfig
from validator.judge.evenness import apply_max_concentration
from validator.metrics import ALL_DIMENSIONS, HUMAN_CEILING, get_metric
from validator.judge.stats import (POWER, PairedStats, adjust_p_values, p_exceeds, rows_to_resolve,
                             slice_rng, slice_stats)

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
Verdict = Literal["pass", "fail", "inconclusive"]
CORRECTED_POLICIES = ("point", "confident")  # tests of a difference; see apply_correction


@dataclass(frozen=True, kw_only=True)
class Check:
    """One check of candidate x slice x dimension; also its record in summary.json
    (``checks[]``, validator.record.schema derives it: undefined values, NaN here, are
    null there). A key added here is added to the file."""
    candidate: str
    slice: str
    dimension: str
    metric: str
    n: int
    reference: float
    candidate_value: float
    degradation: float
    ci_low: float
    ci_high: float
    max_drop: float
    verdict: Verdict  # "" until judge() has decided it
    reason: str
    p_value: float
    p_value_adjusted: float
    detectable_degradation: float
    flips_to_disagree: int
    flips_to_agree: int
    human_ceiling: float
    bootstrap_sd: float = math.nan
    p_value_max_drop: float = math.nan           # one-sided: H0 degradation <= max_drop
    p_value_max_drop_adjusted: float = math.nan  # after gate.correction
    rows_needed: int | None = None               # inconclusive: rated rows to decide

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()}


@dataclass(frozen=True)
class GateResult:
    verdict: str
    exit_code: int
    checks: list[Check]
    resamples: list[np.ndarray] = field(default_factory=list, repr=False)  # per check

    def by_verdict(self, verdict: str) -> list[Check]:
        return [c for c in self.checks if c.verdict == verdict]


def policy_verdicts(policy: str, degradation, ci_low, ci_high, detectable, max_drop):
    """The policy's verdict for every check (arrays broadcast; NaN compares false)."""
    if policy == "point":  # written so that an unknown (NaN) value is never a pass
        return np.select([~np.less_equal(degradation, max_drop),
                          ~np.less_equal(detectable, max_drop)],
                         [FAIL, INCONCLUSIVE], PASS)
    if policy == "confident":
        return np.select([ci_low > max_drop, ci_high < max_drop], [FAIL, PASS], INCONCLUSIVE)
    return np.where(ci_high < max_drop, PASS, FAIL)


def judge(check: Check, slice_rows: int, gate: GateConfig) -> tuple[str, str]:
    """Every comparison is written so that a NaN cannot make a check pass (fail closed)."""
    drop, low, high = check.max_drop, check.ci_low, check.ci_high
    if slice_rows == 0:
        return FAIL, "the slice has no rows in the gate sample"
    if not (math.isfinite(drop) and drop >= 0):
        return FAIL, f"max_drop {drop!r} is not a finite number >= 0"
    if check.n < gate.min_rows:
        return INCONCLUSIVE, f"only {check.n} rated rows, fewer than min_rows {gate.min_rows}"
    if math.isnan(check.degradation) or math.isnan(low):
        return INCONCLUSIVE, "the metric is undefined on this slice (constant ratings)"
    verdict = str(policy_verdicts(gate.policy, check.degradation, low, high,
                                  check.detectable_degradation, drop))
    ci = f"CI [{low:.3g}, {high:.3g}]"
    too_small = (f"too few rows to resolve max_drop {drop:g}: the smallest detectable "
                 f"degradation here is {check.detectable_degradation:.3g}")
    reasons = {
        ("point", FAIL): f"degradation {check.degradation:.3g} exceeds max_drop {drop:g}",
        ("point", INCONCLUSIVE): too_small,
        ("point", PASS): f"degradation {check.degradation:.3g} within max_drop {drop:g}",
        ("confident", FAIL): f"{ci} lies above max_drop {drop:g}",
        ("confident", PASS): f"{ci} lies below max_drop {drop:g}",
        ("confident", INCONCLUSIVE): f"{ci} straddles max_drop {drop:g}; " + too_small,
        ("non_inferiority", PASS): f"non-inferior: {ci} upper bound below max_drop {drop:g}",
        ("non_inferiority", FAIL): f"non-inferiority not shown: {ci} upper bound reaches "
                                   f"max_drop {drop:g}",
    }
    return verdict, reasons[(gate.policy, verdict)]


def adjust(p_values: list[float], method: str) -> list[float]:
    return adjust_p_values(p_values, method)[0].tolist()


def corrected_verdicts(verdicts: np.ndarray, adjusted: np.ndarray, rated: np.ndarray,
                       gate: GateConfig) -> np.ndarray:
    """Failures of a difference policy that do not reject "degradation <= max_drop" at
    the false-fail budget after the correction become inconclusive (rows: runs)."""
    if gate.correction == "none" or gate.policy not in CORRECTED_POLICIES:
        return verdicts
    # an unknown (NaN) p-value leaves the failure standing: fail closed
    downgrade = (verdicts == FAIL) & (rated > 0) & (adjusted >= gate.false_fail_budget)
    return np.where(downgrade, INCONCLUSIVE, verdicts)


def apply_correction(checks: list[Check], gate: GateConfig) -> list[Check]:
    adjusted = adjust([c.p_value for c in checks], gate.correction)
    threshold = np.array([adjust([c.p_value_max_drop for c in checks], gate.correction)])
    verdicts = corrected_verdicts(np.array([[c.verdict for c in checks]]), threshold,
                                  np.array([c.n for c in checks]), gate)[0]
    out = []
    for check, p, q, verdict in zip(checks, adjusted, threshold[0], verdicts):
        check = replace(check, p_value_adjusted=p, p_value_max_drop_adjusted=float(q))
        if verdict != check.verdict:
            check = replace(check, verdict=str(verdict),
                            reason=f"{check.reason}, but not beyond max_drop after "
                                   f"{gate.correction} correction at the false-fail budget "
                                   f"{gate.false_fail_budget:g} (adjusted p={q:.3g})")
        out.append(check)
    return out


def rows_needed(check: Check, gate: GateConfig, tested: int) -> int | None:
    """Rated rows the slice would need for an inconclusive check to decide at its
    observed degradation (the bootstrap SD shrinks as 1/sqrt(rows)). Failing needs the
    corrected level; Bonferroni's budget / checks bounds Holm's, so this errs high."""
    if check.verdict != INCONCLUSIVE:
        return None
    drop, d = check.max_drop, check.degradation
    z_ci = norm.isf((1 - gate.confidence) / 2)
    corrected = gate.correction != "none" and gate.policy in CORRECTED_POLICIES
    z_fail = norm.isf(gate.false_fail_budget / max(tested, 1)) if corrected else z_ci
    if gate.policy == "point" and not d > drop:
        z, gap = z_ci + norm.ppf(POWER), drop  # until the detectable degradation <= max_drop
    else:
        z, gap = (z_fail, d - drop) if d > drop else (z_ci, drop - d)
    needed = rows_to_resolve(check.n, check.bootstrap_sd, gap, z)
    return None if needed is None else max(needed, gate.min_rows)


def explain_inconclusive(checks: list[Check], gate: GateConfig) -> list[Check]:
    tested = sum(not math.isnan(c.p_value_max_drop) for c in checks)
    out = []
    for check in checks:
        needed = rows_needed(check, gate, tested)
        if needed is not None:
            check = replace(check, rows_needed=needed,
                            reason=f"{check.reason}; about {needed} rated rows would decide "
                                   f"it at the observed degradation")
        out.append(check)
    return out


def build_checks(metrics: pd.DataFrame, human: pd.DataFrame, scores: dict[str, np.ndarray],
                 masks: pd.DataFrame, config: Config) -> tuple[list[Check], list[np.ndarray]]:
    """Every check, and every check's bootstrap degradations (resample b of a slice is
    the same draw of rows for all of that slice's checks)."""
    gate = config.gate
    metric = get_metric(gate.metric)  # the plan has checked the name and the overrides
    values = metrics[metrics.metric == gate.metric].set_index(["scorer", "slice", "dimension"])
    reference = config.reference.name
    candidates = [c.name for c in config.candidates]
    dimensions = list(human.columns)
    checks, resamples = [], []
    for slice_name in masks.columns:
        mask = masks[slice_name].to_numpy()
        stats = slice_stats(metric, human.to_numpy()[mask],
                            scores[reference][mask], {c: scores[c][mask] for c in candidates},
                            dimensions, config.rubric.scale, gate.confidence,
                            gate.bootstrap_resamples, slice_rng(config.seed, slice_name))
        for candidate in candidates:
            for dimension in [*dimensions, ALL_DIMENSIONS]:
                checks.append(make_check(values, stats[(candidate, dimension)], reference,
                                         candidate, slice_name, dimension, int(mask.sum()),
                                         metric, config))
                resamples.append(stats[(candidate, dimension)].samples)
    return explain_inconclusive(apply_correction(checks, gate), gate), resamples


def make_check(values, stats: PairedStats, reference, candidate, slice_name, dimension,
               slice_rows, metric, config: Config) -> Check:
    ref = values.loc[(reference, slice_name, dimension)]
    cand = values.loc[(candidate, slice_name, dimension)]
    ceiling_key = (HUMAN_CEILING, slice_name, dimension)
    ceiling = float(values.loc[ceiling_key, "value"]) if ceiling_key in values.index else math.nan
    degradation = metric.degradation(float(ref.value), float(cand.value))
    max_drop = config.gate.max_drop_for(candidate, slice_name, dimension)
    p_max_drop = float(p_exceeds(degradation, stats.bootstrap_sd, max_drop))
    check = Check(candidate=candidate, slice=slice_name, dimension=dimension,
                  metric=config.gate.metric, n=int(cand.n), reference=float(ref.value),
                  candidate_value=float(cand.value), degradation=degradation,
                  ci_low=stats.ci_low, ci_high=stats.ci_high, max_drop=max_drop,
                  verdict="", reason="", p_value=stats.p_value,
                  p_value_adjusted=stats.p_value,
                  detectable_degradation=stats.detectable_degradation,
                  flips_to_disagree=stats.flips_to_disagree,
                  flips_to_agree=stats.flips_to_agree, human_ceiling=ceiling,
                  bootstrap_sd=stats.bootstrap_sd, p_value_max_drop=p_max_drop,
                  p_value_max_drop_adjusted=p_max_drop)
    verdict, reason = judge(check, slice_rows, config.gate)
    return replace(check, verdict=verdict, reason=reason)


def run_verdicts(verdicts: np.ndarray, on_inconclusive: str) -> np.ndarray:
    """The run's verdict from its checks' verdicts (rows: runs, columns: checks)."""
    failed = (verdicts == FAIL).any(axis=1)
    undecided = ~(verdicts == PASS).any(axis=1) | (
        (verdicts == INCONCLUSIVE).any(axis=1) & (on_inconclusive == "fail"))
    return np.select([failed, undecided], [FAIL, INCONCLUSIVE], PASS)


def gate_result(checks: list[Check], on_inconclusive: str,
                resamples: list[np.ndarray] | None = None) -> GateResult:
    """The run's verdict and exit code from its checks' verdicts."""
    verdict = str(run_verdicts(np.array([[c.verdict for c in checks]], dtype=object),
                               on_inconclusive)[0])
    return GateResult(verdict, 0 if verdict == PASS else 1, checks, resamples or [])


def require_serving_isa(result: GateResult, missing_isa: list[str]) -> GateResult:
    """Kernels production will not use decide nothing: on a CPU lacking an instruction
    set that ``serving.isa`` says production serves with (validator.cpu), the run is
    inconclusive (exit 1) whatever its checks say."""
    if not missing_isa:
        return result
    return replace(result, verdict=INCONCLUSIVE, exit_code=1)


def evaluate_gate(metrics: pd.DataFrame, human: pd.DataFrame, scores: dict[str, np.ndarray],
                  masks: pd.DataFrame, config: Config) -> GateResult:
    checks, resamples = build_checks(metrics, human, scores, masks, config)
    checks = apply_max_concentration(checks, config.gate, list(human.columns))
    return gate_result(checks, config.gate.on_inconclusive, resamples)
