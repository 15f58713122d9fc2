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
also reject "degradation <= max_drop" after adjusting those p-values over the checks of
the same candidate (one family per candidate: adding or removing a candidate changes no
other candidate's verdicts), at the level ``false_fail_budget``; otherwise it is
inconclusive. Holm keeps the chance that a candidate fails any check whose true
degradation is within max_drop under the budget. Such a downgraded check is a likely
loss, which blocks even under ``on_inconclusive: warn``, when Benjamini-Hochberg over the
same family at the same level, or its own one-sided p-value below LIKELY_LOSS_LEVEL,
still finds it beyond max_drop (``screened_loss``): a loss spread over a slice's checks
(Holm tests them one at a time) is still caught, so is a strong one among any number
of added trivial checks, and a lossless candidate is rarely blocked by chance (the
uncorrected rule blocked the default's INT8 twins' lossless versions in 63-73% of runs).
A ``non_inferiority`` failure is never downgraded. A configured slice with no
rows fails; fewer than min_rows rated rows is inconclusive (unrated pool rows never
count; with a pool or a rating plan the estimates are design-based, see
validator.judge.design_estimates). An inconclusive check says
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
from validator.metrics import ALL_DIMENSIONS, HUMAN_CEILING, Metric, get_metric
from validator.judge.design_estimates import ratings_needed
from validator.judge.stats import (POWER, RARE_FLIPS, PairedStats, adjust_p_values,
                                   flipped_rows,
                                   p_exceeds, rows_to_rule_out, unseen_flips_margin,
                                   rows_to_resolve, slice_rng, slice_stats)

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
GATE_ROLE, GUARD_ROLE = "gate", "location_guard"
Verdict = Literal["pass", "fail", "inconclusive"]
CORRECTED_POLICIES = ("point", "confident")  # tests of a difference; see apply_correction
LIKELY_LOSS_LEVEL = 0.001  # one-sided: a check this far beyond max_drop blocks under warn
                           # whatever its family's size (see screened_losses); by chance a
                           # lossless INT8 twin of the default is then blocked in ~3% of runs


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
    role: Literal["gate", "location_guard"] = "gate"  # GATE_ROLE or GUARD_ROLE (a location guard)
    unit: str = ""         # the metric's unit, in which degradation and max_drop are given
    flip_rate: float = math.nan           # share of the slice's pairs (pool included) that flip
    phase1_sd: float = 0.0                # the part of bootstrap_sd more ratings cannot shrink
    ratings_needed_uniform: int | None = None   # rated rows to rule out max_drop at no loss
    ratings_needed_targeted: int | None = None  # the same with ratings on flipped rows only
    design_note: str = ""  # why the pool's design cannot support this check (inconclusive)
    unseen_flips_margin: float = 0.0  # agreement: CI widened by flips the rows may not show
    flipped_rows: int | None = None  # agreement: scored rows whose rounded predictions differ
    same_rows_as: str = ""  # an earlier slice with exactly these rows: one hypothesis
    screened_loss: bool = True  # drop beyond max_drop under BH or at LIKELY_LOSS_LEVEL

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
    if check.design_note:
        return INCONCLUSIVE, check.design_note
    if math.isnan(check.degradation) or math.isnan(low):
        return INCONCLUSIVE, ("the metric is undefined on this slice (constant ratings), "
                              "or some of its flipped rows have no rated counterpart")
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


def corrected_verdicts(verdicts: np.ndarray, adjusted: np.ndarray, rated: np.ndarray,
                       gate: GateConfig) -> np.ndarray:
    """Failures of a difference policy that do not reject "degradation <= max_drop" at
    the false-fail budget after the correction become inconclusive (rows: runs)."""
    if gate.correction == "none" or gate.policy not in CORRECTED_POLICIES:
        return verdicts
    # an unknown (NaN) p-value leaves the failure standing: fail closed
    downgrade = (verdicts == FAIL) & (rated > 0) & (adjusted >= gate.false_fail_budget)
    return np.where(downgrade, INCONCLUSIVE, verdicts)


def adjust(p_values: list[float], method: str) -> list[float]:
    return adjust_p_values(p_values, method)[0].tolist()


def candidate_families(candidates: list[str]) -> list[np.ndarray]:
    """Indices of each candidate's checks: the multiple-comparison family is one
    candidate's checks, so adding or removing a candidate changes no other verdict."""
    names = np.array(candidates, dtype=object)
    return [np.flatnonzero(names == name) for name in dict.fromkeys(candidates)]


def twin_index(checks: list[Check]) -> np.ndarray:
    """Per check, the index of the check it repeats (the same candidate, dimension, role
    and max_drop on a slice with exactly the same rows, ``same_rows_as``), else its own:
    a copied slice adds no hypothesis, so it cannot dilute the correction."""
    originals: dict[tuple, int] = {}
    for i, c in enumerate(checks):
        if not c.same_rows_as:
            originals.setdefault((c.candidate, c.slice, c.dimension, c.role, c.max_drop), i)
    return np.array([originals.get((c.candidate, c.same_rows_as, c.dimension, c.role,
                                    c.max_drop), i) if c.same_rows_as else i
                     for i, c in enumerate(checks)], dtype=int)


def adjust_by_candidate(p_values, candidates: list[str], method: str,
                        twins: np.ndarray | None = None) -> np.ndarray:
    """adjust_p_values within each candidate's family (rows: runs, columns: checks); a
    check repeating another (``twins``, from twin_index) takes that check's value and is
    not counted in the family."""
    P = np.atleast_2d(np.asarray(p_values, dtype=float))
    twins = np.arange(P.shape[1]) if twins is None else twins
    counted = twins == np.arange(P.shape[1])
    out = np.full_like(P, np.nan)
    for family in candidate_families(candidates):
        members = family[counted[family]]
        out[:, members] = adjust_p_values(P[:, members], method)
    return out[:, twins]


def screened_losses(p_max_drop, candidates: list[str], gate: GateConfig,
                    twins: np.ndarray | None = None) -> np.ndarray:
    """Checks whose drop beyond max_drop is significant either under Benjamini-Hochberg,
    within each candidate's family at the false-fail budget (several losses of a slice
    raise its threshold together), or on its own at LIKELY_LOSS_LEVEL (a strong loss no
    number of added checks can dilute away). Rows: runs. An unknown p-value counts as
    significant: fail closed."""
    p = np.atleast_2d(np.asarray(p_max_drop, dtype=float))
    screen = adjust_by_candidate(p, candidates, "bh", twins)
    return ~(screen >= gate.false_fail_budget) | ~(p >= LIKELY_LOSS_LEVEL)


def apply_correction(checks: list[Check], gate: GateConfig) -> list[Check]:
    names, twins = [c.candidate for c in checks], twin_index(checks)
    adjusted = adjust_by_candidate([c.p_value for c in checks], names, gate.correction,
                                   twins)[0]
    p_max_drop = [c.p_value_max_drop for c in checks]
    threshold = adjust_by_candidate(p_max_drop, names, gate.correction, twins)
    verdicts = corrected_verdicts(np.array([[c.verdict for c in checks]]), threshold,
                                  np.array([c.n for c in checks]), gate)[0]
    screened = screened_losses(p_max_drop, names, gate, twins)[0]
    out = []
    for check, p, q, verdict, loss in zip(checks, adjusted, threshold[0], verdicts, screened):
        check = replace(check, p_value_adjusted=float(p), p_value_max_drop_adjusted=float(q),
                        screened_loss=bool(loss))
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
    needed = rows_to_resolve(check.n, check.bootstrap_sd, gap, z, check.phase1_sd)
    return None if needed is None else max(needed, gate.min_rows)


def margin_binds(check: Check) -> bool:
    """An inconclusive check that more ratings cannot decide: its estimate is within
    max_drop but its CI's upper bound (or, under ``point``, its detectable degradation) is
    the unseen-flips margin, above max_drop (validator.judge.stats.unseen_flips_margin).
    An estimate beyond max_drop is a loss the rows show: ratings do decide it. Takes a
    check or its record."""
    m, d, drop = check.unseen_flips_margin, check.degradation, check.max_drop
    high, detectable = check.ci_high, check.detectable_degradation
    if check.verdict != INCONCLUSIVE or not m > 0 or None in (d, drop, high, detectable) \
            or unchanged_flips(check):
        return False  # (a record holds None where a check holds NaN)
    return bool((high == d + m and high >= drop and d < drop)
                or (detectable == m and m > drop and d <= drop))


def unchanged_flips(check) -> bool:
    """Whether the check's margin comes from flips its rated rows show without a change of
    agreement (more ratings of flipped rows decide it), not from flips too rare to see."""
    flipped = check.flipped_rows
    return flipped is not None and check.flips_to_disagree + check.flips_to_agree < flipped


def more_rows_note(check: Check, gate: GateConfig) -> str:
    if unchanged_flips(check):
        return (f"{check.unseen_flips_margin:.3g} {check.unit or 'points'} of its CI are "
                f"flips whose effect its rated rows do not show (fewer than {RARE_FLIPS} "
                f"flipped rows changed agreement): rate more of the slice's flipped rows")
    note = (f"{check.unseen_flips_margin:.3g} {check.unit or 'points'} of its CI are flips "
            f"this slice's scored rows may not show, which ratings cannot remove: score more "
            f"unrated rows of the slice")
    rows = rows_to_rule_out(check.max_drop, gate.confidence)
    if check.flip_rate == 0 and rows is not None:
        note += f" (with none flipped, {rows:,} scored rows rule out max_drop {check.max_drop:g})"
    return note


def explain_inconclusive(checks: list[Check], gate: GateConfig) -> list[Check]:
    tested: dict[str, int] = {}  # per candidate: the family the correction runs over
    for c in checks:
        tested[c.candidate] = tested.get(c.candidate, 0) + (not math.isnan(c.p_value_max_drop))
    out = []
    for check in checks:
        flips_unrated = check.verdict == INCONCLUSIVE and check.unseen_flips_margin > 0 \
            and unchanged_flips(check)
        if margin_binds(check) or flips_unrated:
            out.append(replace(check, reason=f"{check.reason}; {more_rows_note(check, gate)}"))
            continue
        needed = rows_needed(check, gate, tested[check.candidate])
        if needed is not None:
            check = replace(check, rows_needed=needed,
                            reason=f"{check.reason}; about {needed} rated rows would decide "
                                   f"it at the observed degradation")
        out.append(check)
    return out


def guard_metric(gate: GateConfig) -> tuple[Metric, float] | None:
    """The location guard of a gate metric blind to a shift (Metric.guard), and its
    threshold in the guard's unit; None when the gate metric sees a shift itself."""
    guard = get_metric(gate.metric).guard
    if guard is None:
        return None
    metric = get_metric(guard)
    return metric, metric.max_drop if gate.guard_max_drop is None else gate.guard_max_drop


def gated_metrics(gate: GateConfig) -> list[str]:
    """The metrics the checks read: the gate's, and its guard's."""
    guard = guard_metric(gate)
    return [gate.metric] + ([] if guard is None else [guard[0].name])


def needs_design(human: np.ndarray, weight: np.ndarray) -> bool:
    """A slice needs the design-based estimates when some of its rows are unrated pool
    rows or its rated rows were chosen with unequal probabilities; otherwise (every row
    rated, equal weights) they reduce to the plain paired bootstrap, which is used."""
    rated = ~np.isnan(human).all(axis=1)
    return bool(len(human)) and (not rated.all() or np.ptp(weight[rated]) > 0)


def build_checks(metrics: pd.DataFrame, human: pd.DataFrame, scores: dict[str, np.ndarray],
                 masks: pd.DataFrame, config: Config, weights: np.ndarray | None = None
                 ) -> tuple[list[Check], list[np.ndarray]]:
    """Every check, and every check's bootstrap degradations (resample b of a slice is
    the same draw of rows for all of that slice's checks); a guarded metric's location
    guard checks follow the gate's, and the correction covers both. ``weights``: 1 /
    inclusion probability per gate row (None: the rated rows are a uniform subsample)."""
    gate = config.gate
    # the plan has checked the name and the overrides
    checks, resamples = metric_checks(metrics, human, scores, masks, config, weights,
                                      get_metric(gate.metric), gate.max_drop_for, GATE_ROLE)
    guard = guard_metric(gate)
    if guard is not None:
        metric, max_drop = guard
        more, more_resamples = metric_checks(metrics, human, scores, masks, config, weights,
                                             metric, lambda *where: max_drop, GUARD_ROLE)
        checks, resamples = checks + more, resamples + more_resamples
    return explain_inconclusive(apply_correction(checks, gate), gate), resamples


def metric_checks(metrics: pd.DataFrame, human: pd.DataFrame, scores: dict[str, np.ndarray],
                  masks: pd.DataFrame, config: Config, weights: np.ndarray | None,
                  metric: Metric, max_drop_for, role: str
                  ) -> tuple[list[Check], list[np.ndarray]]:
    """One metric's checks (before the correction), each with its bootstrap degradations;
    ``max_drop_for(candidate, slice, dimension)`` gives each check's threshold."""
    gate = config.gate
    values = metrics[metrics.metric == metric.name].set_index(["scorer", "slice", "dimension"])
    reference = config.reference.name
    candidates = [c.name for c in config.candidates]
    dimensions = list(human.columns)
    ratings = human.to_numpy()
    weights = np.ones(len(human)) if weights is None else np.asarray(weights, dtype=float)
    checks, resamples = [], []
    twins = same_rows(masks)
    for slice_name in masks.columns:
        mask = masks[slice_name].to_numpy()
        designed = needs_design(ratings[mask], weights[mask])
        rng = slice_rng(config.seed, twins[slice_name] or slice_name)  # a copy: same draws
        stats = slice_stats(metric, ratings[mask],
                            scores[reference][mask], {c: scores[c][mask] for c in candidates},
                            dimensions, config.rubric.scale, gate.confidence,
                            gate.bootstrap_resamples, rng,
                            weights[mask] if designed else None)
        for candidate in candidates:
            flipped = flip_counts(metric, scores[reference][mask], scores[candidate][mask],
                                  dimensions, config)
            for dimension in [*dimensions, ALL_DIMENSIONS]:
                check = make_check(values, stats[(candidate, dimension)], reference,
                                   candidate, slice_name, dimension, int(mask.sum()), metric,
                                   config, max_drop_for(candidate, slice_name, dimension),
                                   role, designed, flipped[dimension])
                checks.append(replace(check, same_rows_as=twins[slice_name]))
                resamples.append(stats[(candidate, dimension)].samples)
    return checks, resamples


def same_rows(masks: pd.DataFrame) -> dict[str, str]:
    """Per slice, the first earlier slice with exactly its rows ('' for none): checks on
    the copy repeat the first slice's and count once in the correction (twin_index)."""
    first: dict[bytes, str] = {}
    twins = {}
    for name in masks.columns:
        key = np.packbits(masks[name].to_numpy(dtype=bool)).tobytes()
        twins[name] = "" if first.setdefault(key, name) == name else first[key]
    return twins


def flip_counts(metric: Metric, reference: np.ndarray, candidate: np.ndarray,
                dimensions: list[str], config: Config) -> dict[str, int | None]:
    """Per dimension (and ``_all``), the slice's scored rows whose rounded predictions
    differ, for an agreement metric; None for other metrics (no unseen-flips margin)."""
    if metric.flip_tolerance is None:
        return dict.fromkeys([*dimensions, ALL_DIMENSIONS], None)
    return flipped_rows(reference, candidate, dimensions, config.rubric.scale)


def seen_flips(flipped: int, stats: PairedStats) -> int:
    """Flips whose effect the slice shows: scored flipped rows, but no more than the rated
    rows whose agreement the flip changed (McNemar's discordant pairs). Twelve flips that
    all leave agreement as it was give a bootstrap CI of [0, 0] while production's flips
    may still lose: they count as none seen."""
    return min(flipped, stats.flips_to_disagree + stats.flips_to_agree)


def with_margin(stats: PairedStats, degradation: float, margin: float) -> PairedStats:
    """The CI's upper bound, and the detectable degradation, at least ``margin`` above the
    estimate: a bootstrap over rows that rarely or never flip cannot see flips production
    may hold (a candidate identical on 200 rows gets the CI [0, 0] otherwise). Unseen
    flips are counted as losses, so only the upper bound moves: the lower bound keeps the
    evidence of loss the rows show (lowering it let 6 observed losses of 50 rows, 12
    points, escape the likely-loss rule)."""
    if not margin > 0 or math.isnan(degradation):
        return stats
    return replace(stats, ci_high=max(stats.ci_high, degradation + margin),
                   detectable_degradation=max(stats.detectable_degradation, margin))


def power_before_work(stats: PairedStats, n: int, dimension: str, max_drop: float,
                      gate: GateConfig, dimensions: int) -> tuple[int | None, int | None]:
    """(ratings_needed_uniform, ratings_needed_targeted): rated rows of the slice that
    would show degradation < max_drop at POWER when the candidate loses nothing. For a
    row-mean metric from the two-phase cells; for kappa and spearman by scaling the
    bootstrap SD as 1/sqrt(rows) (no targeted figure: they have no exact zero)."""
    z = norm.isf((1 - gate.confidence) / 2) + norm.ppf(POWER)
    if stats.design is None:
        return rows_to_resolve(n, stats.bootstrap_sd, max_drop, z), None
    pairs = dimensions if dimension == ALL_DIMENSIONS else 1
    needed = ratings_needed(stats.design, stats.bound, max_drop, z, pairs)
    return tuple(None if k is None else max(k, gate.min_rows) for k in needed)


def make_check(values, stats: PairedStats, reference, candidate, slice_name, dimension,
               slice_rows, metric, config: Config, max_drop: float, role: str,
               designed: bool = False, flipped: int | None = None) -> Check:
    ref = values.loc[(reference, slice_name, dimension)]
    cand = values.loc[(candidate, slice_name, dimension)]
    ceiling_key = (HUMAN_CEILING, slice_name, dimension)
    ceiling = float(values.loc[ceiling_key, "value"]) if ceiling_key in values.index else math.nan
    degradation = metric.degradation(float(ref.value), float(cand.value))
    if designed and stats.design is not None:  # the two-phase estimate, zero on non-flips
        degradation = stats.design.degradation
    margin = 0.0 if flipped is None else unseen_flips_margin(
        seen_flips(flipped, stats), slice_rows, config.gate.confidence)
    stats = with_margin(stats, degradation, margin)
    p_max_drop = float(p_exceeds(degradation, stats.bootstrap_sd, max_drop))
    uniform, targeted = power_before_work(stats, int(cand.n), dimension, max_drop,
                                          config.gate, len(config.rubric.dimensions))
    check = Check(candidate=candidate, slice=slice_name, dimension=dimension,
                  metric=metric.name, n=int(cand.n), reference=float(ref.value),
                  candidate_value=float(cand.value), degradation=degradation,
                  ci_low=stats.ci_low, ci_high=stats.ci_high, max_drop=max_drop,
                  verdict="", reason="", p_value=stats.p_value,
                  p_value_adjusted=stats.p_value,
                  detectable_degradation=stats.detectable_degradation,
                  flips_to_disagree=stats.flips_to_disagree,
                  flips_to_agree=stats.flips_to_agree, human_ceiling=ceiling,
                  bootstrap_sd=stats.bootstrap_sd, p_value_max_drop=p_max_drop,
                  p_value_max_drop_adjusted=p_max_drop, role=role, unit=metric.unit,
                  flip_rate=stats.flip_rate,
                  phase1_sd=stats.design.phase1_sd if designed and stats.design else 0.0,
                  ratings_needed_uniform=uniform, ratings_needed_targeted=targeted,
                  design_note=stats.design_note, unseen_flips_margin=margin,
                  flipped_rows=flipped)
    verdict, reason = judge(check, slice_rows, config.gate)
    if role == GUARD_ROLE:
        reason = f"location guard ({metric.name}, {metric.unit}): {reason}"
    return replace(check, verdict=verdict, reason=reason)


def run_verdicts(verdicts: np.ndarray, on_inconclusive: str,
                 likely_loss: np.ndarray | None = None) -> np.ndarray:
    """The run's verdict from its checks' verdicts (rows: runs, columns: checks).
    ``likely_loss``: inconclusive checks whose whole CI lies above max_drop and whose
    drop screened_losses still finds beyond it (see likely_loss); they block even
    under ``on_inconclusive: warn``, which only forgives checks too small to decide."""
    failed = (verdicts == FAIL).any(axis=1)
    blocking = (verdicts == INCONCLUSIVE) & (
        (on_inconclusive == "fail") | (False if likely_loss is None else likely_loss))
    undecided = ~(verdicts == PASS).any(axis=1) | blocking.any(axis=1)
    return np.select([failed, undecided], [FAIL, INCONCLUSIVE], PASS)


def gate_result(checks: list[Check], on_inconclusive: str,
                resamples: list[np.ndarray] | None = None) -> GateResult:
    """The run's verdict and exit code from its checks' verdicts."""
    verdicts = np.array([[c.verdict for c in checks]], dtype=object)
    likely = np.array([[likely_loss(c) for c in checks]], dtype=bool)
    verdict = str(run_verdicts(verdicts, on_inconclusive, likely)[0])
    return GateResult(verdict, 0 if verdict == PASS else 1, checks, resamples or [])


def likely_loss(check) -> bool:
    """An inconclusive check whose whole CI lies above its max_drop and whose drop beyond
    it screened_losses finds significant (``screened_loss``) though Holm does not: a loss the correction softened, not a check too small to
    decide. Takes a Check, or its record, where an undefined bound is None, not NaN."""
    low, drop = check.ci_low, check.max_drop
    return check.verdict == INCONCLUSIVE and check.screened_loss and low is not None \
        and drop is not None and bool(low > drop)


def require_serving_isa(result: GateResult, missing_isa: list[str]) -> GateResult:
    """Kernels production will not use decide nothing: on a CPU lacking an instruction
    set that ``serving.isa`` says production serves with (validator.cpu), the run is
    inconclusive (exit 1) whatever its checks say."""
    if not missing_isa:
        return result
    return replace(result, verdict=INCONCLUSIVE, exit_code=1)


def evaluate_gate(metrics: pd.DataFrame, human: pd.DataFrame, scores: dict[str, np.ndarray],
                  masks: pd.DataFrame, config: Config,
                  weights: np.ndarray | None = None) -> GateResult:
    checks, resamples = build_checks(metrics, human, scores, masks, config, weights)
    checks = apply_max_concentration(checks, config.gate, list(human.columns))
    return gate_result(checks, config.gate.on_inconclusive, resamples)
