"""Paired bootstrap statistics against an independent, one-resample-at-a-time computation.

The documented draw (``rng.integers(0, n, (B, n))`` from ``slice_rng(seed, slice)``) is
replayed here, each resample's rows are materialised, and the metrics are recomputed with
scikit-learn / scipy on those rows. The vectorised weighted implementation must give the
same CIs, spreads and p-values. These tests are also the ones mutation testing runs
against validator/judge/stats.py (see tests/README.md).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from scipy.stats import binomtest, norm, rankdata, spearmanr
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.multitest import multipletests

import validator.judge.stats as stats
from validator.metrics import _weighted_ranks, w_kappa, w_spearman  # weighted metric forms
from validator.metrics import METRICS, get_metric
from validator.judge.stats import (PairedStats, adjust_p_values, check_inputs, flips, mcnemar_exact,
                             p_exceeds, resample_counts, rows_to_resolve, slice_rng, slice_stats,
                             summarise)

SCALE = (1, 5)
LABELS = [1, 2, 3, 4, 5]


# The two entry points under test, called in one place each (their signatures may change).

def paired(metric: str, human, reference, candidates, dimensions, confidence, resamples, rng):
    return slice_stats(get_metric(metric), human, reference, candidates, dimensions,
                       SCALE, confidence, resamples, rng)


def summary_of(metric: str, samples, h, ref, cand, confidence) -> PairedStats:
    return summarise(get_metric(metric), samples, h, ref, cand, SCALE, confidence)


def rounded(x):
    return np.floor(np.clip(x, 1, 5) + 0.5).astype(int)


def independent(metric: str, h: np.ndarray, p: np.ndarray) -> float:
    if len(h) == 0:
        return math.nan
    if metric == "exact_agreement":
        return float(np.mean(rounded(h) == rounded(p)) * 100)
    if metric == "adjacent_agreement":
        return float(np.mean(np.abs(rounded(h) - rounded(p)) <= 1) * 100)
    if metric == "mean_absolute_error":
        return float(np.mean(np.abs(np.clip(p, 1, 5) - h)))
    if metric == "quadratic_kappa":
        if len(set(rounded(h))) == 1 and len(set(rounded(p))) == 1:
            return math.nan
        return cohen_kappa_score(rounded(h), rounded(p), weights="quadratic", labels=LABELS)
    if np.ptp(h) == 0 or np.ptp(p) == 0:
        return math.nan
    return spearmanr(p, h).statistic


# -- slice_rng / resample_counts ----------------------------------------------------------

def test_slice_rng_is_seeded_by_the_seed_and_the_crc32_of_the_slice_name():
    draw = slice_rng(7, "héadlines").integers(0, 1000, 20)
    documented = np.random.default_rng([7, zlib.crc32("héadlines".encode("utf-8"))])
    assert draw.tolist() == documented.integers(0, 1000, 20).tolist()
    assert draw.tolist() != slice_rng(8, "héadlines").integers(0, 1000, 20).tolist()
    assert draw.tolist() != slice_rng(7, "headlines").integers(0, 1000, 20).tolist()


@pytest.mark.parametrize("max_cells, shapes", [
    (4_000_000, [(7, 5)]),            # everything in one chunk
    (10, [(2, 5), (2, 5), (2, 5), (1, 5)]),
    (3, [(1, 5)] * 7),                # fewer cells than one resample: one row per chunk
])
def test_resample_counts_replay_the_documented_draw_in_chunks(monkeypatch, max_cells, shapes):
    monkeypatch.setattr(stats, "MAX_CELLS", max_cells)
    chunks = list(resample_counts(np.random.default_rng(4), 5, 7))
    assert [c.shape for c in chunks] == shapes
    assert all(c.dtype == np.float64 for c in chunks)
    counts = np.vstack(chunks)
    draws = np.random.default_rng(4).integers(0, 5, (7, 5))
    expected = np.stack([np.bincount(row, minlength=5) for row in draws])
    assert counts.tolist() == expected.tolist()
    assert (counts.sum(axis=1) == 5).all()


def test_resample_counts_of_one_row_use_chunks_as_large_as_the_memory_bound(monkeypatch):
    chunks = list(resample_counts(np.random.default_rng(0), 1, 3))
    assert np.vstack(chunks).tolist() == [[1.0], [1.0], [1.0]]
    monkeypatch.setattr(stats, "MAX_CELLS", 4)
    chunks = list(resample_counts(np.random.default_rng(0), 1, 5))
    assert [c.shape for c in chunks] == [(4, 1), (1, 1)]


def test_resample_counts_keep_rows_that_the_last_resample_never_drew():
    draws = np.random.default_rng(0).integers(0, 4, (2, 4))
    assert 3 not in draws[-1]  # the last cell of the flattened count matrix is zero
    counts = next(resample_counts(np.random.default_rng(0), 4, 2))
    assert counts.tolist() == [[0, 1, 2, 1], [3, 1, 0, 0]]


# -- weighted metrics = the metric on the materialised resample ---------------------------

def resample_weights(n: int, b: int, seed: int = 0):
    draws = np.random.default_rng(seed).integers(0, n, (b, n))
    return draws, np.stack([np.bincount(row, minlength=n) for row in draws]).astype(float)


def test_weighted_kappa_equals_sklearn_on_each_resample():
    rng = np.random.default_rng(5)
    h = np.round(rng.uniform(1, 5, 60) * 2) / 2
    p = h + rng.normal(0, 1.0, 60)
    draws, W = resample_weights(60, 6)
    got = w_kappa(W, h, p, SCALE)
    for b, rows in enumerate(draws):
        assert got[b] == pytest.approx(independent("quadratic_kappa", h[rows], p[rows]),
                                       abs=1e-12)
    # a 1..3 scale: the confusion matrix is 3 x 3
    h3, p3 = np.array([1, 2, 3, 3, 2.0]), np.array([1, 3, 3, 2, 2.0])
    assert w_kappa(np.ones((1, 5)), h3, p3, (1, 3))[0] == pytest.approx(
        cohen_kappa_score(h3.astype(int), p3.astype(int), weights="quadratic"), abs=1e-12)


def test_weighted_ranks_are_mid_ranks_of_the_materialised_resample():
    values = np.array([3.0, 1.0, 3.0, 2.0, 5.0])
    W = np.array([[1, 2, 0, 1, 1], [0, 1, 3, 0, 1.0]])
    ranks = _weighted_ranks(W, values)
    for b in range(2):
        rows = np.repeat(np.arange(5), W[b].astype(int))
        expected = dict(zip(rows, rankdata(values[rows])))
        for i in rows:
            assert ranks[b, i] == expected[i]


def test_weighted_spearman_equals_scipy_on_each_resample_and_nan_when_constant():
    rng = np.random.default_rng(6)
    h = np.round(rng.uniform(1, 5, 50) * 2) / 2
    p = h + rng.normal(0, 0.7, 50)
    draws, W = resample_weights(50, 5)
    got = w_spearman(W, h, p, SCALE)
    for b, rows in enumerate(draws):
        assert got[b] == pytest.approx(spearmanr(p[rows], h[rows]).statistic, abs=1e-12)
    assert math.isnan(w_spearman(np.ones((1, 4)), np.full(4, 3.0), np.arange(4.0), SCALE)[0])


# -- flips / McNemar / check_inputs -------------------------------------------------------

def test_flips_count_rows_that_change_agreement_in_each_direction():
    h = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 2.5])
    ref = np.array([1.2, 2.0, 4.0, 4.4, 3.0, 3.2])    # agrees on rows 0, 1, 3, 5
    cand = np.array([2.0, 2.4, 3.0, 5.0, 6.0, 2.0])   # agrees on rows 1, 2, 4
    assert flips(h, ref, cand, SCALE) == (3, 2)        # rows 0, 3, 5 lost; 2, 4 gained
    assert flips(h, cand, ref, SCALE) == (2, 3)
    # within one point: ref misses row 4 (|3 - 5| = 2); cand misses nothing
    assert flips(h, ref, cand, SCALE, tolerance=1) == (0, 1)
    assert flips(h, ref, ref, SCALE) == (0, 0)


@pytest.mark.parametrize("to_disagree, to_agree", [(10, 2), (3, 0), (0, 3), (1, 1), (7, 9)])
def test_mcnemar_exact_is_the_two_sided_binomial_test(to_disagree, to_agree):
    expected = binomtest(to_disagree, to_disagree + to_agree, 0.5).pvalue
    assert mcnemar_exact(to_disagree, to_agree) == pytest.approx(expected, abs=1e-15)
    assert mcnemar_exact(3, 0) == pytest.approx(0.25)
    assert mcnemar_exact(0, 0) == 1.0


def test_check_inputs_drop_unrated_pairs_and_keep_their_rows():
    h = np.array([[1.0, np.nan], [np.nan, 2.0], [3.0, 4.0]])
    r, c = h + 0.1, h + 0.2
    r[np.isnan(r)], c[np.isnan(c)] = 9.0, 8.0
    hh, rr, cc, rows = check_inputs(h, r, c, "b", ["a", "b"])
    assert hh.tolist() == [2.0, 4.0] and rows.tolist() == [1, 2]
    assert rr.tolist() == pytest.approx([2.1, 4.1]) and cc.tolist() == pytest.approx([2.2, 4.2])
    hh, rr, cc, rows = check_inputs(h, r, c, "_all", ["a", "b"])
    assert hh.tolist() == [1.0, 2.0, 3.0, 4.0] and rows.tolist() == [0, 1, 2, 2]
    assert rr.tolist() == pytest.approx([1.1, 2.1, 3.1, 4.1])
    assert cc.tolist() == pytest.approx([1.2, 2.2, 3.2, 4.2])


# -- summarise ----------------------------------------------------------------------------

def test_summarise_percentile_ci_sd_detectable_and_bootstrap_p_value():
    samples = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, np.nan, np.inf, 4.0, 6.0])
    h = np.array([1.0, 2.0])
    out = summary_of("spearman", samples, h, h, h, 0.9)
    finite = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0])
    assert out.ci_low == pytest.approx(np.percentile(finite, 5))
    assert out.ci_high == pytest.approx(np.percentile(finite, 95))
    assert out.bootstrap_sd == pytest.approx(np.std(finite, ddof=1))
    assert out.detectable_degradation == pytest.approx(
        (norm.ppf(0.95) + norm.ppf(0.8)) * np.std(finite, ddof=1))
    # two-sided: 2 of 8 resamples are <= 0, 7 of 8 are >= 0
    assert out.p_value == pytest.approx(2 * 2 / 8)
    assert (out.flips_to_disagree, out.flips_to_agree) == (0, 0)
    assert isinstance(out, PairedStats)
    assert out.samples is samples  # every resample kept, NaN and inf included


def test_summarise_p_value_is_capped_at_one_and_uses_mcnemar_for_agreement():
    h = np.array([1.0, 2.0, 3.0, 4.0])
    ref = h.copy()
    cand = np.array([2.0, 3.0, 4.0, 4.0])  # three rows lost exactly; all within one point
    zeros = np.zeros(5)
    assert summary_of("mean_absolute_error", zeros, h, ref, cand, 0.95).p_value == 1.0
    exact = summary_of("exact_agreement", zeros, h, ref, cand, 0.95)
    assert (exact.flips_to_disagree, exact.flips_to_agree) == (3, 0)
    assert exact.p_value == pytest.approx(0.25)
    adjacent = summary_of("adjacent_agreement", zeros, h, ref, cand, 0.95)
    assert (adjacent.flips_to_disagree, adjacent.flips_to_agree) == (0, 0)
    assert adjacent.p_value == 1.0
    assert exact.bootstrap_sd == 0.0 and exact.detectable_degradation == 0.0


def test_summarise_without_finite_samples_is_all_nan_but_keeps_flips():
    h = np.array([1.0, 2.0])
    out = summary_of("spearman", np.array([np.nan, np.nan]), h, h, h + 1, 0.95)
    assert all(math.isnan(v) for v in (out.ci_low, out.ci_high, out.bootstrap_sd,
                                       out.detectable_degradation, out.p_value))
    assert (out.flips_to_disagree, out.flips_to_agree) == (2, 0)
    assert np.isnan(out.samples).all() and len(out.samples) == 2
    agreement = summary_of("exact_agreement", np.array([]), h, h, h + 1, 0.95)
    assert agreement.p_value == pytest.approx(0.5) and math.isnan(agreement.ci_low)
    single = summary_of("spearman", np.array([0.5]), h, h, h, 0.95)
    assert (single.ci_low, single.ci_high, single.bootstrap_sd) == (0.5, 0.5, 0.0)
    assert single.p_value == 0.0
    two = summary_of("spearman", np.array([0.5, 1.5]), h, h, h, 0.95)
    assert two.bootstrap_sd == pytest.approx(np.std([0.5, 1.5], ddof=1))


# -- slice_stats: every metric against the replayed bootstrap -----------------------------

def rated_sample(n: int = 40, seed: int = 9):
    rng = np.random.default_rng(seed)
    human = np.round(rng.uniform(1, 5, (n, 2)) * 2) / 2
    human[rng.random((n, 2)) < 0.15] = np.nan     # unrated pairs
    reference = human + rng.normal(0, 0.6, (n, 2))
    reference[np.isnan(reference)] = 3.0
    candidates = {"a": reference + rng.normal(0, 0.5, (n, 2)),
                  "b": reference + rng.normal(0.4, 0.3, (n, 2))}
    return human, reference, candidates


def replayed(metric, higher_is_better, human, reference, cand, dimension, draws):
    sign = 1.0 if higher_is_better else -1.0
    out = []
    for rows in draws:
        h, r, c = human[rows], reference[rows], cand[rows]
        if dimension is not None:
            h, r, c = h[:, dimension], r[:, dimension], c[:, dimension]
        rated = ~np.isnan(h)
        h, r, c = h[rated], r[rated], c[rated]
        out.append(sign * (independent(metric, h, r) - independent(metric, h, c)))
    return np.array(out)


@pytest.mark.parametrize("metric, higher_is_better", [
    ("exact_agreement", True), ("adjacent_agreement", True), ("mean_absolute_error", False),
    ("quadratic_kappa", True), ("spearman", True)])
def test_slice_stats_equal_the_replayed_bootstrap(metric, higher_is_better):
    human, reference, candidates = rated_sample()
    resamples, confidence = 60, 0.9
    got = paired(metric, human, reference, candidates, ["x", "y"], confidence, resamples,
                 slice_rng(2, "s"))
    assert set(got) == {(c, d) for c in "ab" for d in ("x", "y", "_all")}
    draws = slice_rng(2, "s").integers(0, len(human), (resamples, len(human)))
    for (name, dimension), result in got.items():
        index = {"x": 0, "y": 1, "_all": None}[dimension]
        samples = replayed(metric, higher_is_better, human, reference, candidates[name],
                           index, draws)
        samples = samples[np.isfinite(samples)]
        low, high = np.percentile(samples, [5, 95])
        assert result.ci_low == pytest.approx(low, abs=1e-9), (name, dimension)
        assert result.ci_high == pytest.approx(high, abs=1e-9), (name, dimension)
        assert result.bootstrap_sd == pytest.approx(samples.std(ddof=1), abs=1e-9)
        h, r, c, _ = check_inputs(human, reference, candidates[name], dimension, ["x", "y"])
        tolerance = 1 if metric == "adjacent_agreement" else 0
        assert (result.flips_to_disagree, result.flips_to_agree) == flips(h, r, c, SCALE,
                                                                          tolerance)
        if metric not in ("exact_agreement", "adjacent_agreement"):
            expected_p = min(1.0, 2 * min((samples <= 0).mean(), (samples >= 0).mean()))
            assert result.p_value == pytest.approx(expected_p)


def test_row_metrics_take_the_matrix_product_path(monkeypatch):
    def refuse(*args):
        raise AssertionError("a row metric went through the per-check loop")
    monkeypatch.setattr(stats, "_generic_samples", refuse)
    human, reference, candidates = rated_sample(20)
    for metric in ("exact_agreement", "adjacent_agreement", "mean_absolute_error"):
        got = paired(metric, human, reference, candidates, ["x", "y"], 0.9, 30,
                     slice_rng(1, "s"))
        assert len(got[("a", "_all")].samples) == 30
    with pytest.raises(AssertionError, match="per-check loop"):
        paired("spearman", human, reference, candidates, ["x", "y"], 0.9, 30,
               slice_rng(1, "s"))


def test_slice_stats_signs_degradation_by_direction():
    human = np.array([[1.0], [2.0], [3.0], [4.0], [5.0]] * 4)
    reference = human + 0.1
    worse = {"c": human + 0.45}  # still rounds right, but further away
    mae = paired("mean_absolute_error", human, reference, worse, ["d"], 0.95, 50,
                 slice_rng(0, "x"))[("c", "d")]
    # |5.45 -> 5| error is 0 at the top of the scale: the drop is 0.35 on 16 of 20 rows
    assert mae.ci_low > 0 and mae.ci_high <= 0.35 + 1e-12
    exact = paired("exact_agreement", human, reference, worse, ["d"], 0.95, 50,
                   slice_rng(0, "x"))[("c", "d")]
    assert (exact.ci_low, exact.ci_high) == (0.0, 0.0)


def test_slice_stats_of_an_empty_slice():
    empty = np.zeros((0, 2))
    got = paired("exact_agreement", empty, empty, {"c": empty}, ["x", "y"], 0.95, 100,
                 slice_rng(0, "empty"))
    assert set(got) == {("c", "x"), ("c", "y"), ("c", "_all")}
    for result in got.values():
        assert math.isnan(result.ci_low) and math.isnan(result.ci_high)
        assert result.p_value == 1.0 and result.flips_to_disagree == 0
    spearman = paired("spearman", empty, empty, {"c": empty}, ["x", "y"], 0.95, 100,
                      slice_rng(0, "empty"))
    assert math.isnan(spearman[("c", "_all")].p_value)


@pytest.mark.filterwarnings("error")
@pytest.mark.filterwarnings("error")  # "silently": a numpy RuntimeWarning fails the test
@pytest.mark.parametrize("metric", sorted(METRICS))
def test_resamples_without_rated_pairs_or_variation_give_nan_silently(metric):
    # dimension y is rated on one row of six: most resamples do not draw it
    human = np.array([[1.0, np.nan], [2.0, np.nan], [3.0, 4.0], [4.0, np.nan],
                      [5.0, np.nan], [2.0, np.nan]])
    reference = np.nan_to_num(human, nan=3.0) + 0.1
    candidates = {"c": reference + 0.3}
    # every metric, kappa and spearman included: their divisions by a zero total are
    # inside np.errstate since issue 11 (this test once left them out)
    got = paired(metric, human, reference, candidates, ["x", "y"], 0.95, 100,
                 slice_rng(1, "rare"))
    assert math.isfinite(got[("c", "x")].ci_low), metric
    rare = got[("c", "y")].samples
    assert np.isnan(rare).any() and np.isfinite(rare).sum() < len(rare), metric
    constant = np.full(5, 3.0)
    assert math.isnan(w_spearman(np.ones((1, 5)), constant, constant + 0.2, SCALE)[0])
    assert math.isnan(w_kappa(np.ones((1, 5)), constant, constant, SCALE)[0])


# -- p_exceeds / adjust_p_values / rows_to_resolve ----------------------------------------

@pytest.mark.filterwarnings("error")  # zero spreads are handled without numpy warnings
def test_p_exceeds_is_the_one_sided_normal_tail_of_degradation_beyond_max_drop():
    d = np.array([2.0, 0.5, 1.0, 3.0, 0.0, 1.0, np.nan, 2.0])
    sd = np.array([0.5, 0.25, 0.3, 0.0, 0.0, 0.0, 1.0, np.nan])
    got = p_exceeds(d, sd, 1.0)
    assert got[0] == pytest.approx(norm.sf((2.0 - 1.0) / 0.5), rel=1e-12)  # 0.0228
    assert got[1] == pytest.approx(norm.sf(-2.0), rel=1e-12)               # 0.977
    assert got[2] == 0.5                                                   # on max_drop
    # no spread: certain beyond (p 0) or within (p 1), equality counts as within
    assert got[3:6].tolist() == [0.0, 1.0, 1.0]
    assert math.isnan(got[6]) and math.isnan(got[7])
    assert p_exceeds(2.0, 0.5, np.array([1.0, 3.0])).tolist() == pytest.approx(
        [norm.sf(2.0), norm.sf(-2.0)], rel=1e-12)
    assert float(p_exceeds(1.5, 0.5, 1.0)) == pytest.approx(norm.sf(1.0), rel=1e-12)
    assert float(p_exceeds(5.0, 1.0, 0.0)) == pytest.approx(2.866515718791939e-07, rel=1e-9)


@pytest.mark.parametrize("method, statsmodels_name", [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjust_p_values_match_statsmodels_row_by_row(method, statsmodels_name):
    rng = np.random.default_rng(3)
    P = rng.uniform(0, 0.2, (4, 7)) ** 2
    P[1, 2] = P[1, 5]  # ties keep their order
    P[2] = 0.9         # adjusted values above 1 are capped
    got = adjust_p_values(P, method)
    assert got.shape == P.shape
    for row, expected in zip(got, P):
        assert row.tolist() == pytest.approx(
            multipletests(expected, method=statsmodels_name)[1].tolist(), abs=1e-15)
    assert got[2].max() == (1.0 if method == "holm" else pytest.approx(0.9))


def test_adjust_p_values_leave_columns_with_a_nan_out_and_none_copies():
    P = np.array([[0.01, np.nan, 0.02, 0.04], [0.03, 0.5, 0.01, 0.2]])
    got = adjust_p_values(P, "holm")
    assert np.isnan(got[:, 1]).all()
    known = P[:, [0, 2, 3]]
    for row, expected in zip(got[:, [0, 2, 3]], known):
        assert row.tolist() == pytest.approx(multipletests(expected, method="holm")[1])
    same = adjust_p_values(P, "none")
    assert same is not P and np.array_equal(same, P, equal_nan=True)
    assert adjust_p_values([0.04, 0.01], "holm").tolist() == [pytest.approx([0.04, 0.02])]
    assert np.isnan(adjust_p_values([[np.nan, np.nan]], "bh")).all()
    assert adjust_p_values(np.zeros((2, 0)), "bh").shape == (2, 0)
    certain = adjust_p_values([[1, 0]], "holm")  # integer p-values come back as floats
    assert certain.dtype == np.float64 and certain.tolist() == [[1.0, 0.0]]


def test_rows_to_resolve_scales_the_rows_by_the_squared_spread_over_the_gap():
    assert rows_to_resolve(100, 0.5, 0.25, 2.0) == 1600
    assert rows_to_resolve(100, 0.1, 0.3, 1.96) == math.ceil(100 * (1.96 * 0.1 / 0.3) ** 2)
    assert rows_to_resolve(10, 0.3, 1.0, 1.0) == 1  # ceil(0.9)
    assert rows_to_resolve(1, 1.0, 0.5, 2.0) == 16  # one rated row is enough to scale from
    for n, sd, gap in [(0, 0.5, 0.2), (-1, 0.5, 0.2), (10, math.nan, 0.2), (10, math.inf, 0.2),
                       (10, 0.5, 0.0), (10, 0.5, -0.1), (10, 0.5, math.nan),
                       (10, 0.5, math.inf)]:
        assert rows_to_resolve(n, sd, gap, 2.0) is None, (n, sd, gap)
    assert isinstance(rows_to_resolve(3, 1.0, 1.0, 1.0), int)


# -- the unseen-flips margin of rare flips ----------------------------------------------------

@pytest.mark.parametrize("rows", [10, 172, 400, 4151])
def test_no_flipped_row_leaves_the_rule_of_three_margin(rows):
    """0 of n rows flipped: the production flip share may still reach 1 - (alpha/2)^(1/n)
    (Clopper-Pearson), and every flip can cost a row 100 points."""
    expected = 100 * (1 - 0.025 ** (1 / rows))
    assert stats.unseen_flips_margin(0, rows, 0.95) == pytest.approx(expected)
    assert stats.unseen_flips_margin(0, rows, 0.99) > expected


def test_the_margin_covers_the_flip_share_it_claims_to():
    """At the bound's flip share, seeing so few flipped rows happens in at most alpha/2
    of samples; a flip share a little below it is seen that rarely more often."""
    for flipped, rows in ((0, 400), (3, 400), (9, 1000)):
        upper = flipped / rows + stats.unseen_flips_margin(flipped, rows, 0.95) / 100
        assert binomtest(flipped, rows, upper, alternative="less").pvalue == \
            pytest.approx(0.025, rel=1e-6)
        assert binomtest(flipped, rows, 0.9 * upper, alternative="less").pvalue > 0.025


def test_from_rare_flips_on_the_bootstrap_carries_the_flip_rate():
    assert stats.unseen_flips_margin(stats.RARE_FLIPS - 1, 400, 0.95) > 1.9
    assert stats.unseen_flips_margin(stats.RARE_FLIPS, 400, 0.95) == 0.0
    assert stats.unseen_flips_margin(0, 0, 0.95) == 0.0


def test_rows_to_rule_out_is_the_first_row_count_below_the_gap():
    rows = stats.rows_to_rule_out(1.0, 0.95)
    assert rows == 368
    assert stats.unseen_flips_margin(0, rows, 0.95) < 1.0 <= \
        stats.unseen_flips_margin(0, rows - 1, 0.95)
    assert stats.rows_to_rule_out(0.0, 0.95) is None and stats.rows_to_rule_out(100, 0.95) is None


def test_flipped_rows_count_rows_per_dimension_and_in_any_dimension():
    reference = np.array([[1.0, 2.0], [3.0, 3.0], [4.4, 5.0], [2.0, 2.0]])
    candidate = np.array([[1.2, 2.6], [3.0, 3.0], [4.6, 4.0], [2.0, 2.0]])
    assert stats.flipped_rows(reference, candidate, ["a", "b"], (1, 5)) == \
        {"a": 1, "b": 2, "_all": 2}
