"""Paired uncertainty for every check: bootstrap CIs, McNemar, flips, detectability.

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
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, norm

from validator.metrics import (ALL_DIMENSIONS, confusion_codes, kappa_from_confusion,
                               round_rating)

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


# -- metrics that are not row means, from weights: W (B, n), h/p (n,) -------------------

def w_kappa(W, h, p, scale):
    k = scale[1] - scale[0] + 1
    onehot = np.zeros((len(h), k * k))
    onehot[np.arange(len(h)), confusion_codes(h, p, scale)] = 1.0
    return kappa_from_confusion((W @ onehot).reshape(-1, k, k))


def _weighted_ranks(W, values):
    """Mid-ranks of each row's value within every weighted resample (ties share ranks)."""
    unique, group = np.unique(values, return_inverse=True)
    sums = np.zeros((W.shape[0], len(unique)))
    np.add.at(sums.T, group, W.T)
    before = np.cumsum(sums, axis=1) - sums
    return (before + (sums + 1.0) / 2.0)[:, group]


def w_spearman(W, h, p, scale):
    rh, rp = _weighted_ranks(W, h), _weighted_ranks(W, p)
    total = W.sum(axis=1, keepdims=True)
    mh = (W * rh).sum(axis=1, keepdims=True) / total
    mp = (W * rp).sum(axis=1, keepdims=True) / total
    cov = (W * (rh - mh) * (rp - mp)).sum(axis=1)
    var = (W * (rh - mh) ** 2).sum(axis=1) * (W * (rp - mp) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return cov / np.sqrt(var)


WEIGHTED = {"quadratic_kappa": w_kappa, "spearman": w_spearman}
AGREEMENT = {"exact_agreement": 0, "adjacent_agreement": 1}  # allowed |difference|


@dataclass(frozen=True)
class PairedStats:
    ci_low: float
    ci_high: float
    bootstrap_sd: float
    detectable_degradation: float
    p_value: float
    flips_to_disagree: int
    flips_to_agree: int


def flips(h, ref, cand, scale, tolerance: int = 0) -> tuple[int, int]:
    """(rows agreeing under the reference but not the candidate, and the reverse)."""
    hr = round_rating(h, scale)
    ref_ok = np.abs(round_rating(ref, scale) - hr) <= tolerance
    cand_ok = np.abs(round_rating(cand, scale) - hr) <= tolerance
    return int((ref_ok & ~cand_ok).sum()), int((~ref_ok & cand_ok).sum())


def mcnemar_exact(to_disagree: int, to_agree: int) -> float:
    discordant = to_disagree + to_agree
    return 1.0 if discordant == 0 else float(binomtest(to_disagree, discordant, 0.5).pvalue)


ROW_VALUE = {  # metrics that are a mean of one value per (row, dimension) pair
    "exact_agreement": lambda h, p, scale: (round_rating(p, scale)
                                            == round_rating(h, scale)) * 100.0,
    "adjacent_agreement": lambda h, p, scale: (np.abs(round_rating(p, scale)
                                                      - round_rating(h, scale)) <= 1) * 100.0,
    "mean_absolute_error": lambda h, p, scale: np.abs(np.clip(p, *scale) - h),
}


def _linear_samples(metric, sign, human, reference, candidates, dimensions, W_chunks, scale):
    """Degradation samples for every (candidate, dimension) of a slice from one matrix
    product per chunk: W @ [per-row sums of metric values | per-row rated counts]."""
    rated = ~np.isnan(human)
    value = ROW_VALUE[metric]

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


def _generic_samples(metric, sign, human, reference, candidates, dimensions, W_chunks, scale):
    """Degradation samples for metrics that are not row means (kappa, spearman)."""
    fn = WEIGHTED[metric]
    inputs = {(c, d): check_inputs(human, reference, pred, d, dimensions)
              for c, pred in candidates.items() for d in [*dimensions, ALL_DIMENSIONS]}
    samples = {key: [] for key in inputs}
    for W in W_chunks:
        for key, (h, r, c, rows) in inputs.items():
            Wp = W[:, rows]
            samples[key].append(sign * (fn(Wp, h, r, scale) - fn(Wp, h, c, scale)))
    return {key: np.concatenate(parts) for key, parts in samples.items()}


def slice_stats(metric: str, higher_is_better: bool, human: np.ndarray, reference: np.ndarray,
                candidates: dict[str, np.ndarray], dimensions: list[str], scale,
                confidence: float, resamples: int,
                rng: np.random.Generator) -> dict[tuple[str, str], PairedStats]:
    """PairedStats for every (candidate, dimension) of one slice (rows already selected)."""
    n = len(human)
    sign = 1.0 if higher_is_better else -1.0
    sampler = _linear_samples if metric in ROW_VALUE else _generic_samples
    chunks = resample_counts(rng, n, resamples) if n else iter(())
    samples = sampler(metric, sign, human, reference, candidates, dimensions, chunks, scale) \
        if n else {(c, d): np.array([]) for c in candidates
                   for d in [*dimensions, ALL_DIMENSIONS]}
    out = {}
    for (name, dimension), values in samples.items():
        h, r, c, _ = check_inputs(human, reference, candidates[name], dimension, dimensions)
        out[(name, dimension)] = summarise(metric, values, h, r, c, scale, confidence)
    return out


def summarise(metric, samples, h, ref, cand, scale, confidence) -> PairedStats:
    samples = samples[np.isfinite(samples)]
    alpha = 1 - confidence
    to_disagree, to_agree = flips(h, ref, cand, scale, AGREEMENT.get(metric, 0))
    if metric in AGREEMENT:
        p_value = mcnemar_exact(to_disagree, to_agree)
    elif len(samples):  # two-sided bootstrap p-value for "no degradation"
        p_value = float(min(1.0, 2 * min((samples <= 0).mean(), (samples >= 0).mean())))
    else:
        p_value = float("nan")
    if not len(samples):
        nan = float("nan")
        return PairedStats(nan, nan, nan, nan, p_value, to_disagree, to_agree)
    low, high = np.percentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    sd = float(samples.std(ddof=1)) if len(samples) > 1 else 0.0
    detectable = (norm.ppf(1 - alpha / 2) + norm.ppf(POWER)) * sd
    return PairedStats(float(low), float(high), sd, float(detectable), p_value,
                       to_disagree, to_agree)


def check_inputs(h, r, c, dimension, dimensions):
    """(h, ref, cand, row_of_pair) for one dimension of a slice, unrated pairs dropped."""
    if dimension != ALL_DIMENSIONS:
        j = dimensions.index(dimension)
        rated = ~np.isnan(h[:, j])
        return h[rated, j], r[rated, j], c[rated, j], np.flatnonzero(rated)
    rated = ~np.isnan(h)
    rows = np.nonzero(rated)[0]
    return h[rated], r[rated], c[rated], rows
