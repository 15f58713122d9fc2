"""The design-based estimates (validator.judge.design_estimates, the pool-aware paths of
validator.judge.stats and compute_metrics's weights) against enumeration, a known
truth by simulation, and today's numbers where every row is rated."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from validator.judge.design_estimates import (cell_columns, cells_of, combine, estimate,
                                              flip_pairs)
from validator.judge.stats import (_linear_samples, design_inputs, resample_counts,
                                   rows_to_resolve, slice_stats)
from validator.metrics import ALL_DIMENSIONS, compute_metrics, get_metric

SCALE = (1, 5)
EXACT = get_metric("exact_agreement")
MAE = get_metric("mean_absolute_error")


def population(rng, n, flip_share=0.2, loss=0.0):
    """(human, reference, candidate) with one dimension: the candidate moves the
    reference's rounded rating by one on ``flip_share`` of rows; ``loss`` tilts the
    flips towards rows where the reference agreed with the human."""
    human = rng.integers(1, 6, n).astype(float)
    reference = np.clip(human + rng.normal(0, 0.6, n), 1, 5)
    flip = rng.random(n) < flip_share
    agree = np.floor(reference + 0.5) == human
    flip &= rng.random(n) < np.where(agree, 0.5 + loss, 0.5 - loss)
    step = np.where(reference > 3, -1.0, 1.0)
    candidate = np.where(flip, reference + step, reference)
    return human[:, None], reference[:, None], candidate[:, None]


def true_degradation(metric, human, reference, candidate):
    return metric.degradation(metric.value(human[:, 0], reference[:, 0], SCALE),
                              metric.value(human[:, 0], candidate[:, 0], SCALE))


def two_phase(metric, human, reference, candidate, weight, resamples=0, seed=0):
    """(point estimate, bootstrap samples, DesignEstimate) for dimension 'd'."""
    sign = 1.0 if metric.higher_is_better else -1.0
    columns, extras = design_inputs(metric, sign, human, reference, {"c": candidate}, ["d"],
                                    SCALE, weight)
    est = extras[("c", "d")][0]
    return est.degradation, est


# -- all rows rated, equal weights: today's numbers ---------------------------------------

@pytest.mark.parametrize("metric", [EXACT, get_metric("adjacent_agreement"), MAE])
def test_two_phase_equals_the_plain_paired_estimate_when_every_row_is_rated(metric):
    rng = np.random.default_rng(1)
    human, reference, candidate = population(rng, 400)
    human = np.column_stack([human, np.roll(human, 3)])   # two dimensions, pooled too
    reference = np.column_stack([reference, np.roll(reference, 5)])
    candidate = np.column_stack([candidate, np.roll(candidate, 5)])
    sign = 1.0 if metric.higher_is_better else -1.0
    columns, extras = design_inputs(metric, sign, human, reference, {"c": candidate},
                                    ["a", "b"], SCALE, np.ones(400))
    W = next(resample_counts(np.random.default_rng(2), 400, 50))
    plain = _linear_samples(metric, sign, human, reference, {"c": candidate}, ["a", "b"],
                            iter([W]), SCALE)
    for j, dimension in enumerate(["a", "b", ALL_DIMENSIONS]):
        part = slice(None) if dimension == ALL_DIMENSIONS else slice(j, j + 1)
        today = metric.degradation(metric.value(human[:, part].ravel(),
                                                reference[:, part].ravel(), SCALE),
                                   metric.value(human[:, part].ravel(),
                                                candidate[:, part].ravel(), SCALE))
        assert extras[("c", dimension)][0].degradation == pytest.approx(today, abs=1e-9)
        cols = columns[("c", dimension)]
        k = cols.phase1.shape[1]
        resampled = combine(W @ cols.matrix, W.sum(axis=1), k, cols.pairs)
        assert resampled == pytest.approx(plain[("c", dimension)], abs=1e-9)


# -- enumeration: stratified phase 2 is exactly unbiased for the pool ----------------------

def test_two_phase_is_unbiased_over_every_subsample_of_the_flips():
    """Fixed-size simple random samples of the flipped rows (non-flipped rows need no
    rating): the mean of the estimate over all C(N_f, n_f) subsamples is the pool's."""
    rng = np.random.default_rng(3)
    human, reference, candidate = population(rng, 20, flip_share=1.0)
    flips = np.flatnonzero(flip_pairs(EXACT, reference, candidate, SCALE)[:, 0] > 0)
    assert len(flips) >= 6
    truth = true_degradation(EXACT, human, reference, candidate)
    taken = 4
    estimates = []
    for chosen in combinations(flips, taken):
        rated = human.copy()
        rated[np.setdiff1d(np.arange(20), chosen)] = np.nan
        weight = np.zeros(20)
        weight[list(chosen)] = len(flips) / taken
        estimates.append(two_phase(EXACT, rated, reference, candidate, weight)[0])
    assert np.mean(estimates) == pytest.approx(truth, abs=1e-9)


# -- simulation: a known truth, a pool drawn from production, ratings by a design ----------

def simulate(metric, design, runs=150, pool=1500, loss=0.0, seed=11):
    """Point estimates, CI coverage of the production truth (not the pool's), and the
    phase-1 SD, over seeded runs of the gate's own slice_stats."""
    rng = np.random.default_rng(seed)
    truth = true_degradation(metric, *population(np.random.default_rng(99), 400_000,
                                                 loss=loss))
    estimates, covered = [], []
    for run in range(runs):
        human, reference, candidate = population(rng, pool, loss=loss)
        distance = flip_pairs(metric, reference, candidate, SCALE)[:, 0]
        probability = design(distance)
        rated = rng.random(pool) < probability
        weight = np.where(rated, 1 / probability, 0.0)
        human = np.where(rated[:, None], human, np.nan)
        stats = slice_stats(metric, human, reference, {"c": candidate}, ["d"], SCALE, 0.95,
                            300, np.random.default_rng([seed, run]), weight)[("c", "d")]
        estimates.append(stats.design.degradation)
        covered.append(stats.ci_low <= truth <= stats.ci_high)
    return truth, np.array(estimates), np.mean(covered)


def targeted(distance):
    return np.where(distance > 0, 0.5, 0.03)


def uniform(distance):
    return np.full(len(distance), 0.15)


@pytest.mark.parametrize("design", [targeted, uniform])
@pytest.mark.parametrize("loss", [0.0, 0.2])
def test_two_phase_is_unbiased_and_covers_the_production_truth(design, loss):
    truth, estimates, coverage = simulate(EXACT, design, loss=loss)
    error = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - truth) < 3.5 * error + 0.05
    assert 0.90 <= coverage <= 0.99


def test_targeted_rating_is_tighter_than_uniform_at_the_same_budget():
    # about 225 ratings either way: 0.15 x 1500 uniform, 0.5 x ~20% flips + 0.03 others
    _, on_flips, _ = simulate(EXACT, targeted, runs=60)
    _, spread, _ = simulate(EXACT, uniform, runs=60)
    assert on_flips.std() < 0.75 * spread.std()


def test_mean_absolute_error_two_phase_is_unbiased_with_difference_bins():
    def by_difference(distance):
        return np.clip(0.05 + distance, 0.05, 0.9)
    truth, estimates, coverage = simulate(MAE, by_difference, runs=120, loss=0.2)
    error = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - truth) < 3.5 * error + 1e-3
    assert 0.88 <= coverage <= 0.99


def test_the_pool_variance_counts_when_the_pool_is_small():
    """With every flip rated, the phase-2 error is nil: what remains is the phase-1
    error of the flip rate, which the interval must still cover."""
    truth, estimates, coverage = simulate(EXACT, lambda d: np.where(d > 0, 1.0, 0.02),
                                          runs=150, pool=300, loss=0.2, seed=5)
    assert 0.90 <= coverage <= 0.99
    assert estimates.std() > 1.0  # the pool's own sampling error, in points


# -- weights in compute_metrics: integer weights = repeated rows ---------------------------

@pytest.mark.parametrize("name", ["exact_agreement", "adjacent_agreement", "quadratic_kappa",
                                  "spearman", "mean_absolute_error"])
def test_weighted_values_equal_the_metric_on_rows_repeated_by_their_weight(name):
    rng = np.random.default_rng(4)
    human, reference, _ = population(rng, 60)
    weights = rng.integers(1, 5, 60).astype(float)
    frame = pd.DataFrame({"d": human[:, 0]})
    masks = pd.DataFrame({"all": np.ones(60, dtype=bool)})
    weighted = compute_metrics(frame, {"r": reference}, masks, SCALE, only=[name],
                               weights=weights)
    repeated = np.repeat(np.arange(60), weights.astype(int))
    plain = compute_metrics(pd.DataFrame({"d": human[repeated, 0]}), {"r": reference[repeated]},
                            pd.DataFrame({"all": np.ones(len(repeated), dtype=bool)}), SCALE,
                            only=[name])
    assert weighted.value.to_numpy() == pytest.approx(plain.value.to_numpy(), abs=1e-9)


# -- the arithmetic of ratings needed -------------------------------------------------------

def test_rows_to_resolve_keeps_the_pools_share_of_the_variance():
    assert rows_to_resolve(100, 2.0, 1.0, 2.0) == 1600           # no pool: n (z sd / gap)^2
    # sd^2 = 4 of which 1 from the pool: 100 * 3 / ((1/2)^2 ... needs (gap/z)^2 > 1
    assert rows_to_resolve(100, 2.0, 4.0, 2.0, phase1_sd=1.0) == 100
    assert rows_to_resolve(100, 2.0, 1.0, 2.0, phase1_sd=1.0) is None  # pool too small


def test_ratings_needed_on_flips_is_the_flip_rate_times_uniform():
    from validator.judge.design_estimates import ratings_needed
    rng = np.random.default_rng(6)
    human, reference, candidate = population(rng, 2000)
    _, est = two_phase(EXACT, human, reference, candidate, np.ones(2000))
    bound = np.array([100.0 ** 2])
    uniform_n, targeted_n = ratings_needed(est, bound, 2.0, 2.8, 1)
    assert targeted_n == pytest.approx(est.flip_rate * uniform_n, rel=0.01)
    assert uniform_n == pytest.approx(2.8 ** 2 * est.flip_rate
                                      * est.cell_second_moments[0] / 4, rel=0.01)
    # no rated flips: the bound stands in (100^2 per flipped pair)
    rows = len(human)
    unrated = np.full_like(human, np.nan)
    _, blind = two_phase(EXACT, unrated, reference, candidate, np.zeros(rows))
    assert ratings_needed(blind, bound, 2.0, 2.8, 1)[0] == int(
        np.ceil(2.8 ** 2 * blind.flip_rate * 1e4 / 4))


def test_cells_split_differences_into_bins_with_rated_pairs_only():
    distance = np.repeat([0.0, 0.1, 0.2, 0.4, 0.8], 100)[:, None]
    rated = np.ones_like(distance, dtype=bool)
    cells = cells_of(distance, rated, agreement=False)
    assert set(np.unique(cells)) == {0, 1, 2, 3, 4}
    assert (cells[distance == 0] == 0).all()
    assert (cells_of(distance, rated, agreement=True) == (distance > 0)).all()
    few = rated & (np.arange(500)[:, None] % 50 == 0)          # 8 rated flips: one bin
    assert set(np.unique(cells_of(distance, few, agreement=False))) == {0, 1}
    cols = cell_columns(np.zeros_like(distance), cells, rated, np.ones(500))
    assert cols.phase1.sum() == 400 and cols.pairs == 1
    assert estimate(cols, np.zeros_like(distance), cells, rated, np.ones(500)).flip_rate == 0.8


def test_kappa_under_a_flip_targeted_plan_is_design_weighted():
    """Oversampling flips tilts an unweighted kappa; 1 / inclusion probability weights
    recover the production truth (the gate's absolute values and kappa degradation)."""
    kappa = get_metric("quadratic_kappa")
    truth = true_degradation(kappa, *population(np.random.default_rng(98), 200_000,
                                                loss=0.2))
    rng = np.random.default_rng(12)
    weighted, plain = [], []
    for _ in range(40):
        human, reference, candidate = population(rng, 2000, loss=0.2)
        probability = targeted(flip_pairs(kappa, reference, candidate, SCALE)[:, 0])
        rated = rng.random(2000) < probability
        frame = pd.DataFrame({"d": np.where(rated, human[:, 0], np.nan)})
        masks = pd.DataFrame({"all": np.ones(2000, dtype=bool)})
        scores = {"r": reference, "c": candidate}
        for out, weights in ((weighted, np.where(rated, 1 / probability, 0.0)), (plain, None)):
            values = compute_metrics(frame, scores, masks, SCALE, only=["quadratic_kappa"],
                                     weights=weights).set_index(["scorer", "dimension"]).value
            out.append(values[("r", "d")] - values[("c", "d")])
    error = np.std(weighted, ddof=1) / np.sqrt(len(weighted))
    assert abs(np.mean(weighted) - truth) < 3.5 * error
    assert abs(np.mean(plain) - truth) > 3 * abs(np.mean(weighted) - truth)
