"""The gate: one check per candidate x slice x dimension, and the run's verdict.

Each check carries the paired bootstrap CI of its degradation, a p-value (McNemar's
exact test for agreement metrics), the smallest degradation its slice could detect,
and flip counts. The policy turns them into a verdict:

- ``point``: fail when the degradation exceeds max_drop; a slice too small to resolve
  its threshold (detectable degradation > max_drop) is inconclusive, not a pass.
- ``confident``: fail when the whole CI lies above max_drop, pass when it lies below,
  otherwise inconclusive.
- ``non_inferiority``: pass only when the CI's upper bound is below max_drop.

With ``correction`` (holm or bh) a difference-test failure (``point``, ``confident``)
must also be significant after adjusting the p-values of all checks of the run;
otherwise it is inconclusive. A ``non_inferiority`` failure is never softened. A configured
slice with no rows fails; fewer than min_rows rated rows is inconclusive. The run
fails closed: it exits 0 only when no check failed and some check could decide.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from validator.config import Config, GateConfig
from validator.errors import ConfigError
from validator.metrics import ALL_DIMENSIONS, HUMAN_CEILING, get_metric
from validator.stats import PairedStats, slice_rng, slice_stats

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass(frozen=True)
class Check:
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
    verdict: str
    reason: str
    p_value: float
    p_value_adjusted: float
    detectable_degradation: float
    flips_to_disagree: int
    flips_to_agree: int
    human_ceiling: float

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()}


@dataclass(frozen=True)
class GateResult:
    verdict: str
    exit_code: int
    checks: list[Check]

    def by_verdict(self, verdict: str) -> list[Check]:
        return [c for c in self.checks if c.verdict == verdict]


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
    ci = f"CI [{low:.3g}, {high:.3g}]"
    too_small = (f"too few rows to resolve max_drop {drop:g}: the smallest detectable "
                 f"degradation here is {check.detectable_degradation:.3g}")
    if gate.policy == "point":
        if not check.degradation <= drop:
            return FAIL, f"degradation {check.degradation:.3g} exceeds max_drop {drop:g}"
        if not check.detectable_degradation <= drop:
            return INCONCLUSIVE, too_small
        return PASS, f"degradation {check.degradation:.3g} within max_drop {drop:g}"
    if gate.policy == "confident":
        if low > drop:
            return FAIL, f"{ci} lies above max_drop {drop:g}"
        if high < drop:
            return PASS, f"{ci} lies below max_drop {drop:g}"
        return INCONCLUSIVE, f"{ci} straddles max_drop {drop:g}; " + too_small
    if high < drop:
        return PASS, f"non-inferior: {ci} upper bound below max_drop {drop:g}"
    return FAIL, f"non-inferiority not shown: {ci} upper bound reaches max_drop {drop:g}"


def adjust(p_values: list[float], method: str) -> list[float]:
    if method == "none":
        return list(p_values)
    from statsmodels.stats.multitest import multipletests

    values = np.array(p_values, dtype=float)
    adjusted = np.full_like(values, np.nan)
    known = ~np.isnan(values)
    if known.any():
        adjusted[known] = multipletests(values[known], method={"holm": "holm",
                                                               "bh": "fdr_bh"}[method])[1]
    return adjusted.tolist()


def softened_by_correction(check: Check, p_adjusted: float, gate: GateConfig) -> bool:
    """Whether a failure becomes inconclusive under ``correction``: only a difference-test
    failure (policy point or confident: a measured degradation beyond max_drop) whose
    adjusted p-value is a number and not significant. A non-inferiority failure means
    "not shown to be within max_drop", which a weak difference test does not weaken; an
    empty slice or an unknown p-value stays a failure."""
    return (gate.correction != "none" and check.verdict == FAIL
            and gate.policy in ("point", "confident") and check.n > 0
            and not math.isnan(p_adjusted) and p_adjusted >= 1 - gate.confidence)


def apply_correction(checks: list[Check], gate: GateConfig) -> list[Check]:
    adjusted = adjust([c.p_value for c in checks], gate.correction)
    out = []
    for check, p in zip(checks, adjusted):
        check = replace(check, p_value_adjusted=p)
        if softened_by_correction(check, p, gate):
            check = replace(check, verdict=INCONCLUSIVE,
                            reason=f"{check.reason}, but not significant after "
                                   f"{gate.correction} correction (adjusted p={p:.3g})")
        out.append(check)
    return out


def _check_overrides(config: Config, slice_names) -> None:
    for i, override in enumerate(config.gate.overrides):
        if override.slice is not None and override.slice not in slice_names:
            raise ConfigError(f"{config.source}: gate.overrides[{i}].slice: unknown slice "
                              f"{override.slice!r} (defined: {', '.join(slice_names)})")


def build_checks(metrics: pd.DataFrame, human: pd.DataFrame, scores: dict[str, np.ndarray],
                 masks: pd.DataFrame, config: Config) -> list[Check]:
    gate = config.gate
    try:
        metric = get_metric(gate.metric)
    except KeyError as exc:
        raise ConfigError(f"{config.source}: gate.metric: {exc.args[0]}") from exc
    _check_overrides(config, list(masks.columns))
    values = metrics[metrics.metric == gate.metric].set_index(["scorer", "slice", "dimension"])
    reference = config.reference.name
    candidates = [c.name for c in config.candidates]
    dimensions = list(human.columns)
    checks = []
    for slice_name in masks.columns:
        mask = masks[slice_name].to_numpy()
        stats = slice_stats(gate.metric, metric.higher_is_better, human.to_numpy()[mask],
                            scores[reference][mask], {c: scores[c][mask] for c in candidates},
                            dimensions, config.rubric.scale, gate.confidence,
                            gate.bootstrap_resamples, slice_rng(config.seed, slice_name))
        for candidate in candidates:
            for dimension in [*dimensions, ALL_DIMENSIONS]:
                checks.append(make_check(values, stats[(candidate, dimension)], reference,
                                         candidate, slice_name, dimension, int(mask.sum()),
                                         metric, config))
    return apply_correction(checks, gate)


def make_check(values, stats: PairedStats, reference, candidate, slice_name, dimension,
               slice_rows, metric, config: Config) -> Check:
    ref = values.loc[(reference, slice_name, dimension)]
    cand = values.loc[(candidate, slice_name, dimension)]
    ceiling_key = (HUMAN_CEILING, slice_name, dimension)
    ceiling = float(values.loc[ceiling_key, "value"]) if ceiling_key in values.index else math.nan
    check = Check(candidate, slice_name, dimension, config.gate.metric, int(cand.n),
                  float(ref.value), float(cand.value),
                  metric.degradation(float(ref.value), float(cand.value)),
                  stats.ci_low, stats.ci_high,
                  config.gate.max_drop_for(candidate, slice_name, dimension), "", "",
                  stats.p_value, stats.p_value, stats.detectable_degradation,
                  stats.flips_to_disagree, stats.flips_to_agree, ceiling)
    verdict, reason = judge(check, slice_rows, config.gate)
    return replace(check, verdict=verdict, reason=reason)


def decide(checks: list[Check], on_inconclusive: str) -> GateResult:
    verdicts = {c.verdict for c in checks}
    if FAIL in verdicts:
        return GateResult(FAIL, 1, checks)
    if PASS not in verdicts or (INCONCLUSIVE in verdicts and on_inconclusive == "fail"):
        return GateResult(INCONCLUSIVE, 1, checks)
    return GateResult(PASS, 0, checks)


def evaluate_gate(metrics: pd.DataFrame, human: pd.DataFrame, scores: dict[str, np.ndarray],
                  masks: pd.DataFrame, config: Config) -> GateResult:
    checks = build_checks(metrics, human, scores, masks, config)
    return decide(checks, config.gate.on_inconclusive)
