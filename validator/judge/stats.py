"""Paired uncertainty for every check: bootstrap CIs, McNemar, flips, detectability,
the threshold p-value, Holm/BH adjustment and the rows a check needs to decide.

Rows of a slice are resampled with replacement, and reference and candidate are
always scored on the same resample (paired), so the interval is that of the
degradation itself. A resample is a row of counts ``W`` (how often each row was
drawn); every metric is computed from weighted sums, so all resamples of all checks
of a slice come out of a few matrix products instead of a Python loop. Indices are
drawn as ``rng.integers(0, n, (B, n))`` (the draw scipy.stats.bootstrap makes), from a
generator seeded by the run seed and the slice name.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.stats import binom, ks_2samp, norm
from statsmodels.stats.proportion import proportion_confint

from validator.judge.design_estimates import (DesignEstimate, cell_bounds, cell_columns,
                                              cells_of, combine, estimate, flip_pairs)
from validator.metrics import ALL_DIMENSIONS, Metric, round_rating

MAX_CELLS = 4_000_000  # resample chunk size x rows held in memory at once
POWER = 0.8             # for the detectable degradation


def slice_rng(seed: int, slice_name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(slice_name.encode("utf-8"))])


def resample_counts(rng: np.random.Generator, n: int, resamples: int):
    """Yield count matrices (chunk, n): W[b, i] = times row i was drawn in resample b."""
    chunk = max(1, min(resamples, MAX_CELLS // max(n, 1)))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        draws = rng.integers(0, n, (size, n))
        flat = (draws + (np.arange(size) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=size * n).reshape(size, n).astype(np.float64)


@dataclass(frozen=True)
class PairedStats:
    ci_low: float
    ci_high: float
    bootstrap_sd: float
    detectable_degradation: float
    p_value: float
    flips_to_disagree: int
    flips_to_agree: int
    samples: np.ndarray = field(default_factory=lambda: np.array([]), compare=False,
                                repr=False)  # every resample's degradation, NaN kept
    flip_rate: float = float("nan")  # share of the slice's pairs whose rounded predictions differ
    design: DesignEstimate | None = field(default=None, compare=False)  # pool-aware estimate
    bound: np.ndarray | None = field(default=None, compare=False, repr=False)  # max d^2 per cell
    design_note: str = ""  # why the design cannot support the estimate (inconclusive)


def flips(h, ref, cand, scale, tolerance: int = 0) -> tuple[int, int]:
    """(rows agreeing under the reference but not the candidate, and the reverse)."""
    hr = round_rating(h, scale)
    ref_ok = np.abs(round_rating(ref, scale) - hr) <= tolerance
    cand_ok = np.abs(round_rating(cand, scale) - hr) <= tolerance
    return int((ref_ok & ~cand_ok).sum()), int((~ref_ok & cand_ok).sum())


def mcnemar_exact(to_disagree: int, to_agree: int) -> float:
    """Two-sided exact McNemar p-value: binomial(discordant, 1/2), symmetric, so twice
    the smaller tail (equal to ``scipy.stats.binomtest``'s to 1e-14, 10x faster)."""
    discordant = to_disagree + to_agree
    if discordant == 0:
        return 1.0
    return min(1.0, 2.0 * float(binom.cdf(min(to_disagree, to_agree), discordant, 0.5)))


def _linear_samples(metric, sign, human, reference, candidates, dimensions, W_chunks, scale):
    """Degradation samples for every (candidate, dimension) of a slice from one matrix
    product per chunk: W @ [per-row sums of metric values | per-row rated counts]."""
    rated = ~np.isnan(human)
    value = metric.row_value

    def columns(pred):  # per dimension, then pooled over dimensions (_all)
        v = np.where(rated, value(np.nan_to_num(human), pred, scale), 0.0)
        return np.column_stack([v, v.sum(axis=1)])

    counts = np.column_stack([rated, rated.sum(axis=1)]).astype(float)
    blocks = [columns(reference)] + [columns(c) for c in candidates.values()] + [counts]
    matrix = np.hstack(blocks)
    width = len(dimensions) + 1
    samples = {(c, d): [] for c in candidates for d in [*dimensions, ALL_DIMENSIONS]}
    for W in W_chunks:
        product = W @ matrix
        denominator = product[:, -width:]
        with np.errstate(divide="ignore", invalid="ignore"):
            ref = product[:, :width] / denominator
            for k, name in enumerate(candidates, start=1):
                cand = product[:, k * width:(k + 1) * width] / denominator
                for j, d in enumerate([*dimensions, ALL_DIMENSIONS]):
                    samples[(name, d)].append(sign * (ref[:, j] - cand[:, j]))
    return {key: np.concatenate(parts) for key, parts in samples.items()}


def design_inputs(metric, sign, human, reference, candidates, dimensions, scale, weight):
    """Per (candidate, dimension) of a row-mean metric: the two-phase cell columns and
    (point estimate, cell bounds) of validator.judge.design_estimates."""
    rated = ~np.isnan(human)
    agreement = metric.flip_tolerance is not None
    columns, extras = {}, {}
    for name, pred in candidates.items():
        distance = flip_pairs(metric, reference, pred, scale)
        filled = np.nan_to_num(human)
        diff = np.where(rated, sign * (metric.row_value(filled, reference, scale)
                                       - metric.row_value(filled, pred, scale)), 0.0)
        for j, dimension in enumerate([*dimensions, ALL_DIMENSIONS]):
            part = slice(None) if dimension == ALL_DIMENSIONS else slice(j, j + 1)
            cells = cells_of(distance[:, part], rated[:, part], agreement)
            cols = cell_columns(diff[:, part], cells, rated[:, part], weight)
            columns[(name, dimension)] = cols
            extras[(name, dimension)] = (
                estimate(cols, diff[:, part], cells, rated[:, part], weight),
                cell_bounds(distance[:, part], cells, agreement))
    return columns, extras


def _design_samples(columns: dict, W_chunks):
    """Two-phase degradation samples for every check from one matrix product per chunk."""
    keys = list(columns)
    matrix = np.hstack([columns[key].matrix for key in keys])
    offsets = np.cumsum([0] + [columns[key].matrix.shape[1] for key in keys])
    samples = {key: [] for key in keys}
    for W in W_chunks:
        product, draws = W @ matrix, W.sum(axis=1)
        for key, start, end in zip(keys, offsets[:-1], offsets[1:]):
            cols = columns[key]
            samples[key].append(combine(product[:, start:end], draws,
                                        cols.phase1.shape[1], cols.pairs))
    return {key: np.concatenate(parts) for key, parts in samples.items()}


def _generic_samples(metric, sign, human, reference, candidates, dimensions, W_chunks, scale,
                     weight=None):
    """Degradation samples for metrics that are not row means (kappa, spearman); with a
    design, each rated row weighs 1 / inclusion probability (a Hajek estimate)."""
    inputs = {(c, d): check_inputs(human, reference, pred, d, dimensions)
              for c, pred in candidates.items() for d in [*dimensions, ALL_DIMENSIONS]}
    samples = {key: [] for key in inputs}
    for W in W_chunks:
        for key, (h, r, c, rows) in inputs.items():
            Wp = W[:, rows] if weight is None else W[:, rows] * weight[rows]
            samples[key].append(sign * (metric.weighted(Wp, h, r, scale)
                                         - metric.weighted(Wp, h, c, scale)))
    return {key: np.concatenate(parts) for key, parts in samples.items()}


def slice_stats(metric: Metric, human: np.ndarray, reference: np.ndarray,
                candidates: dict[str, np.ndarray], dimensions: list[str], scale,
                confidence: float, resamples: int, rng: np.random.Generator,
                weight: np.ndarray | None = None) -> dict[tuple[str, str], PairedStats]:
    """PairedStats for every (candidate, dimension) of one slice (rows already selected).

    ``weight`` (1 / inclusion probability per row) switches to the design-based
    estimates: a slice with unrated pool rows or unequal inclusion probabilities. The
    resamples then draw phase-1 rows (rated or not), so the spread counts both phases."""
    n = len(human)
    sign = 1.0 if metric.higher_is_better else -1.0
    chunks = resample_counts(rng, n, resamples) if n else iter(())
    columns, extras = {}, {}
    if n and metric.row_value is not None:  # estimates for the power arithmetic, always
        columns, extras = design_inputs(metric, sign, human, reference, candidates,
                                        dimensions, scale,
                                        np.ones(n) if weight is None else weight)
    if not n:
        samples = {(c, d): np.array([]) for c in candidates
                   for d in [*dimensions, ALL_DIMENSIONS]}
    elif metric.row_value is None:
        samples = _generic_samples(metric, sign, human, reference, candidates, dimensions,
                                   chunks, scale, weight)
    elif weight is None:  # every row rated with equal weight: the plain paired bootstrap
        samples = _linear_samples(metric, sign, human, reference, candidates, dimensions,
                                  chunks, scale)
    else:
        samples = _design_samples(columns, chunks)
    notes = {} if weight is None else design_notes(metric, human, reference, candidates,
                                                     dimensions, scale, weight)
    out = {}
    for (name, dimension), values in samples.items():
        h, r, c, _ = check_inputs(human, reference, candidates[name], dimension, dimensions)
        design, bound = extras.get((name, dimension), (None, None))
        stats = summarise(metric, values, h, r, c, scale, confidence)
        out[(name, dimension)] = replace(
            stats, design=design, bound=bound, design_note=notes.get((name, dimension), ""),
            flip_rate=flip_rate(reference, candidates[name], dimension, dimensions, scale))
    return out


MIN_RATED_FLIPS = 10     # rated flipped pairs a check's pool-aware estimate rests on, at least
UNLIKE_POOL_P = 1e-3     # a KS test this sure that rated rows are no uniform subsample


def design_notes(metric, human, reference, candidates, dimensions, scale,
                 weight) -> dict[tuple[str, str], str]:
    """Checks the design cannot support, and why (their checks are inconclusive):
    without a rating plan, rated rows whose prediction differences do not look like
    the pool's (the rated rows are then no uniform subsample, and the pool's shares
    would be paired with unrepresentative differences); and flipped pairs with fewer
    than MIN_RATED_FLIPS rated (a handful of ratings cannot speak for the pool)."""
    rated = ~np.isnan(human)
    rows_rated = rated.any(axis=1)
    planned = rows_rated.any() and np.ptp(weight[rows_rated]) > 0
    notes = {}
    for name, pred in candidates.items():
        distance = flip_pairs(metric, reference, pred, scale)
        unlike = ""
        if not planned and rows_rated.sum() >= 20 and (~rows_rated).sum() >= 20:
            test = ks_2samp(distance[rows_rated].max(axis=1), distance[~rows_rated].max(axis=1))
            if test.pvalue < UNLIKE_POOL_P:
                unlike = (f"its rated rows do not look like its unrated pool rows (prediction "
                          f"differences, KS p = {test.pvalue:.1e}): they are no uniform "
                          f"subsample; rate the rows validator plan-ratings chooses")
        for j, dimension in enumerate([*dimensions, ALL_DIMENSIONS]):
            part = slice(None) if dimension == ALL_DIMENSIONS else slice(j, j + 1)
            flipped = distance[:, part] > 0
            rated_flips = int((flipped & rated[:, part]).sum())
            if unlike:
                notes[(name, dimension)] = unlike
            elif flipped.any() and rated_flips < MIN_RATED_FLIPS:
                notes[(name, dimension)] = (
                    f"only {rated_flips} of its {int(flipped.sum()):,} flipped pairs are "
                    f"rated, fewer than {MIN_RATED_FLIPS}: the loss on flipped rows cannot "
                    f"be estimated; rate flipped rows (validator plan-ratings)")
    return notes


def flip_rate(reference, candidate, dimension, dimensions, scale) -> float:
    """Share of the slice's (row, dimension) pairs, pool included, whose rounded
    predictions differ."""
    if not len(reference):
        return float("nan")
    part = slice(None) if dimension == ALL_DIMENSIONS else dimensions.index(dimension)
    return float((round_rating(reference[:, part], scale)
                  != round_rating(candidate[:, part], scale)).mean())


def flipped_rows(reference, candidate, dimensions, scale) -> dict[str, int]:
    """Rows of the slice (pool included) whose rounded predictions differ, per dimension,
    and in any dimension for ``_all``."""
    differ = round_rating(reference, scale) != round_rating(candidate, scale)
    return {**{d: int(differ[:, j].sum()) for j, d in enumerate(dimensions)},
            ALL_DIMENSIONS: int(differ.any(axis=1).sum()) if differ.size else 0}


RARE_FLIPS = 10  # flipped rows in a slice below which its bootstrap cannot see flips


def unseen_flips_margin(flipped: int, rows: int, confidence: float) -> float:
    """Points of an agreement metric that flips the slice's scored rows do not show could
    still cost, where fewer than RARE_FLIPS rows flipped (a bootstrap over rows that never
    flip gives the CI [0, 0]): a flipped row moves a row's agreement by at most 100, and
    the production share of flipped rows may reach the Clopper-Pearson upper bound of
    ``flipped`` of ``rows`` (0 of 400 rows: 0.92 points at 95%). Zero without rows, and
    from RARE_FLIPS flipped rows on, where the bootstrap (with a pool, the two-phase
    estimate's pool term) carries the flip rate's own error."""
    if rows <= 0 or flipped >= RARE_FLIPS:
        return 0.0
    upper = proportion_confint(flipped, rows, alpha=1 - confidence, method="beta")[1]
    return 100.0 * (float(upper) - flipped / rows)


def rows_to_rule_out(gap: float, confidence: float) -> int | None:
    """Scored rows, none flipped, whose unseen-flips margin is below ``gap`` points."""
    if not 0 < gap < 100:
        return None
    return int(np.floor(np.log((1 - confidence) / 2) / np.log1p(-gap / 100))) + 1


def summarise(metric: Metric, every, h, ref, cand, scale, confidence) -> PairedStats:
    samples = every[np.isfinite(every)]
    alpha = 1 - confidence
    to_disagree, to_agree = flips(h, ref, cand, scale, metric.flip_tolerance or 0)
    if metric.flip_tolerance is not None:
        p_value = mcnemar_exact(to_disagree, to_agree)
    elif len(samples):  # two-sided bootstrap p-value for "no degradation"
        p_value = float(min(1.0, 2 * min((samples <= 0).mean(), (samples >= 0).mean())))
    else:
        p_value = float("nan")
    if not len(samples):
        nan = float("nan")
        return PairedStats(nan, nan, nan, nan, p_value, to_disagree, to_agree, every)
    low, high = np.percentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    sd = float(samples.std(ddof=1)) if len(samples) > 1 else 0.0
    detectable = (norm.ppf(1 - alpha / 2) + norm.ppf(POWER)) * sd
    return PairedStats(float(low), float(high), sd, float(detectable), p_value,
                       to_disagree, to_agree, every)


def check_inputs(h, r, c, dimension, dimensions):
    """(h, ref, cand, row_of_pair) for one dimension of a slice, unrated pairs dropped."""
    if dimension != ALL_DIMENSIONS:
        j = dimensions.index(dimension)
        rated = ~np.isnan(h[:, j])
        return h[rated, j], r[rated, j], c[rated, j], np.flatnonzero(rated)
    rated = ~np.isnan(h)
    rows = np.nonzero(rated)[0]
    return h[rated], r[rated], c[rated], rows


def p_exceeds(degradation, sd, max_drop) -> np.ndarray:
    """One-sided p-value of H0 "degradation <= max_drop", the null a threshold gate tests:
    a normal (Wald) test with the bootstrap SD, so that the small p-values a family-wise
    correction over hundreds of checks needs are resolved (a bootstrap tail share of
    1,000 resamples cannot go below 1/1,000)."""
    d, s, m = np.broadcast_arrays(*(np.asarray(x, dtype=float)
                                    for x in (degradation, sd, max_drop)))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(s > 0, (d - m) / s, np.where(d > m, np.inf, -np.inf))
    return np.where(np.isnan(d) | np.isnan(s), np.nan, norm.sf(z))


def adjust_p_values(p_values, method: str) -> np.ndarray:
    """Holm (family-wise) or Benjamini-Hochberg adjusted p-values of every row of a
    (runs, checks) matrix, the same as statsmodels' multipletests per row; columns with
    a NaN stay NaN."""
    P = np.atleast_2d(np.asarray(p_values, dtype=float))
    if method == "none":
        return P.copy()
    out = np.full_like(P, np.nan)
    known = ~np.isnan(P).any(axis=0)
    p = P[:, known]
    m = p.shape[1]
    if m == 0:
        return out
    order = np.argsort(p, axis=1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=1)
    if method == "holm":
        adjusted = np.maximum.accumulate((m - np.arange(m)) * ranked, axis=1)
    else:  # bh
        scaled = (m / np.arange(1, m + 1)) * ranked
        adjusted = np.minimum.accumulate(scaled[:, ::-1], axis=1)[:, ::-1]
    unsorted = np.empty_like(adjusted)
    np.put_along_axis(unsorted, order, np.minimum(adjusted, 1.0), axis=1)
    out[:, known] = unsorted
    return out


def rows_to_resolve(n: int, sd: float, gap: float, z: float,
                    phase1_sd: float = 0.0) -> int | None:
    """Rated rows at which z bootstrap SDs fit in ``gap``. The rated (phase-2) part of
    the variance shrinks as 1/rows, the pool's (phase-1) part does not:
    n * (sd^2 - phase1_sd^2) / ((gap / z)^2 - phase1_sd^2), n * (z * sd / gap)^2 without
    a pool; None where no number of ratings would do (the pool's own error is too big)."""
    if not (n > 0 and np.isfinite(sd) and np.isfinite(gap) and gap > 0):
        return None
    fixed = min(phase1_sd, sd) ** 2 if np.isfinite(phase1_sd) else 0.0
    if fixed == 0:
        return int(np.ceil(n * (z * sd / gap) ** 2))
    room = (gap / z) ** 2 - fixed
    if room <= 0:
        return None
    return int(np.ceil(n * (sd ** 2 - fixed) / room))
