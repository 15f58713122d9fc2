"""Paired bootstrap CIs, McNemar, policies, corrections and the human ceiling."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import bootstrap, norm, spearmanr
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from conftest import DIMENSIONS, columns_config, human_mean, run_cli
from validator.config import GateConfig
from validator.judge.gate import (FAIL, INCONCLUSIVE, PASS, Check, apply_correction, judge,
                            rows_needed)
from validator.metrics import METRICS, exact_agreement, quadratic_kappa, w_kappa, w_spearman
from validator.judge.stats import (adjust_p_values, mcnemar_exact, p_exceeds, resample_counts,
                             slice_rng, slice_stats)

SCALE = (1, 5)


def test_ci_matches_scipy_bootstrap_with_the_same_resamples():
    rng = np.random.default_rng(11)
    human = rng.integers(1, 6, 300).astype(float)
    ref = human + rng.normal(0, 0.6, 300)
    cand = ref + rng.normal(0, 0.3, 300)
    stats = slice_stats(METRICS["exact_agreement"], human[:, None], ref[:, None],
                        {"c": cand[:, None]}, ["d"], SCALE, 0.95, 1000, slice_rng(5, "s"))
    agree = lambda p: (np.floor(np.clip(p, 1, 5) + 0.5) == human) * 100.0
    expected = bootstrap((agree(ref), agree(cand)), lambda a, b, axis: a.mean(axis) - b.mean(axis),
                         paired=True, vectorized=True, n_resamples=1000, method="percentile",
                         confidence_level=0.95, rng=slice_rng(5, "s"))
    assert stats[("c", "d")].ci_low == pytest.approx(expected.confidence_interval.low, abs=1e-9)
    assert stats[("c", "d")].ci_high == pytest.approx(expected.confidence_interval.high,
                                                      abs=1e-9)
    assert stats[("c", "_all")].ci_low == pytest.approx(stats[("c", "d")].ci_low, abs=1e-9)


def test_mcnemar_exact_matches_the_textbook_and_statsmodels():
    # 10 rows flipped to disagree, 2 back: two-sided exact p = 2 * P(X <= 2 | 12, 0.5)
    assert mcnemar_exact(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096, abs=1e-12)
    table = [[50, 10], [2, 38]]
    assert mcnemar_exact(10, 2) == pytest.approx(mcnemar(table, exact=True).pvalue, abs=1e-12)
    assert mcnemar_exact(0, 0) == 1.0


def test_weighted_metrics_with_unit_weights_equal_the_plain_metrics():
    rng = np.random.default_rng(2)
    human = np.round(rng.uniform(1, 5, 200) * 2) / 2  # rater means: many ties
    pred = human + rng.normal(0, 0.8, 200)
    ones = np.ones((1, 200))
    assert w_kappa(ones, human, pred, SCALE)[0] == pytest.approx(
        quadratic_kappa(human, pred, SCALE), abs=1e-12)
    assert w_spearman(ones, human, pred, SCALE)[0] == pytest.approx(
        spearmanr(pred, human).statistic, abs=1e-12)
    counts = next(resample_counts(np.random.default_rng(0), 200, 3))
    rows = np.repeat(np.arange(200), counts[0].astype(int))
    assert w_spearman(counts[:1], human, pred, SCALE)[0] == pytest.approx(
        spearmanr(pred[rows], human[rows]).statistic, abs=1e-12)
    assert w_kappa(counts[:1], human, pred, SCALE)[0] == pytest.approx(
        quadratic_kappa(human[rows], pred[rows], SCALE), abs=1e-12)


def check_with(**fields) -> Check:
    base = dict(candidate="c", slice="s", dimension="d", metric="exact_agreement", n=400,
                reference=60.0, candidate_value=58.0, degradation=2.0, ci_low=0.5,
                ci_high=3.5, max_drop=1.0, verdict="", reason="", p_value=0.01,
                p_value_adjusted=0.01, detectable_degradation=2.5, flips_to_disagree=20,
                flips_to_agree=12, human_ceiling=55.0)
    return Check(**{**base, **fields})


@pytest.mark.parametrize("policy, fields, verdict", [
    ("point", {}, FAIL),
    ("point", {"degradation": 0.5}, INCONCLUSIVE),          # detectable 2.5 > max_drop 1
    ("point", {"degradation": 0.5, "detectable_degradation": 0.8}, PASS),
    ("confident", {}, INCONCLUSIVE),                        # CI straddles max_drop
    ("confident", {"ci_low": 1.2}, FAIL),
    ("confident", {"ci_low": -1.0, "ci_high": 0.9}, PASS),
    ("non_inferiority", {"ci_low": -1.0, "ci_high": 0.9}, PASS),
    ("non_inferiority", {"ci_low": -1.0, "ci_high": 1.1}, FAIL),
    ("confident", {"n": 20}, INCONCLUSIVE),                 # below min_rows
])
def test_policies(policy, fields, verdict):
    gate = GateConfig(policy=policy, min_rows=50)
    assert judge(check_with(**fields), 400, gate)[0] == verdict


def test_correction_tests_the_threshold_null_and_downgrades_insignificant_failures():
    thresholds = (0.001, 0.02, 0.03, 0.5)
    checks = [check_with(verdict=FAIL, p_value=0.9, p_value_max_drop=p) for p in thresholds]
    corrected = apply_correction(checks, GateConfig(correction="holm", false_fail_budget=0.05))
    expected = multipletests(thresholds, method="holm")[1]          # 0.004, 0.06, 0.06, 0.5
    assert [c.p_value_max_drop_adjusted for c in corrected] == pytest.approx(list(expected))
    assert [c.p_value_adjusted for c in corrected] == [1.0] * 4  # "no change", for information
    assert [c.verdict for c in corrected] == [FAIL, INCONCLUSIVE, INCONCLUSIVE, INCONCLUSIVE]
    assert "holm" in corrected[1].reason and "false-fail budget" in corrected[1].reason
    looser = apply_correction(checks, GateConfig(correction="holm", false_fail_budget=0.1))
    assert [c.verdict for c in looser] == [FAIL, FAIL, FAIL, INCONCLUSIVE]
    bh = apply_correction(checks, GateConfig(correction="bh"))
    assert [c.p_value_max_drop_adjusted for c in bh] == pytest.approx(
        list(multipletests(thresholds, method="fdr_bh")[1]))
    assert [c.verdict for c in apply_correction(checks, GateConfig(correction="none"))] == \
        [FAIL] * 4
    kept = apply_correction(checks, GateConfig(policy="non_inferiority", correction="holm"))
    assert [c.verdict for c in kept] == [FAIL] * 4  # never downgraded by a correction


def test_threshold_p_value_is_one_sided_against_max_drop():
    assert p_exceeds(3.0, 1.0, 1.0) == pytest.approx(norm.sf(2.0))
    assert p_exceeds(0.0, 1.0, 1.0) == pytest.approx(norm.sf(-1.0))
    assert p_exceeds([2.0, 0.5], 0.0, 1.0).tolist() == [0.0, 1.0]   # identical rows: no noise
    assert np.isnan(p_exceeds(np.nan, 1.0, 1.0))


def test_vectorised_adjustment_matches_statsmodels_row_by_row():
    rng = np.random.default_rng(4)
    P = rng.uniform(0, 0.2, (20, 30)) ** 2
    for method, name in (("holm", "holm"), ("bh", "fdr_bh")):
        got = adjust_p_values(P, method)
        for row, adjusted in zip(P, got):
            assert adjusted == pytest.approx(multipletests(row, method=name)[1], abs=1e-12)


@pytest.mark.parametrize("policy, fields, needed", [
    # confident, CI straddles: d = 0.5 below max_drop 1, sd 1 at n 400 -> z 1.96 / gap 0.5
    ("confident", {"degradation": 0.5, "bootstrap_sd": 1.0}, 400 * (1.959964 / 0.5) ** 2),
    # a failure downgraded by holm over one check at budget 0.05: z = 1.645 / gap 1
    ("confident", {"degradation": 2.0, "bootstrap_sd": 1.0}, 400 * 1.644854 ** 2),
    # point: the slice must resolve max_drop itself, (1.96 + 0.84) sd <= 1
    ("point", {"degradation": 0.5, "bootstrap_sd": 1.0}, 400 * (1.959964 + 0.841621) ** 2),
])
def test_rows_needed_scales_the_bootstrap_sd_with_one_over_root_n(policy, fields, needed):
    check = check_with(verdict=INCONCLUSIVE, **fields)
    gate = GateConfig(policy=policy, correction="holm", false_fail_budget=0.05)
    assert rows_needed(check, gate, tested=1) == pytest.approx(needed, abs=1)
    assert rows_needed(check_with(verdict=PASS, **fields), gate, tested=1) is None


def simulate(policy: str, drop_points: float, trials: int = 200, n: int = 400) -> float:
    """Share of seeded trials in which one 400-row check fails under ``policy``.

    The human rating is a rater mean; the reference is a noisy predictor of it; the
    candidate is the reference plus small quantization-like noise (identical in
    distribution), and then, for a planted drop, ``drop_points`` percent of the rows
    where it agreed with the human are moved off by one rating point."""
    gate = GateConfig(policy=policy, max_drop=1.0, min_rows=50)
    failures = 0
    for trial in range(trials):
        rng = np.random.default_rng(1000 + trial)
        human = np.round(rng.uniform(1, 5, n) * 2) / 2
        ref = human + rng.normal(0, 0.6, n)
        cand = ref + rng.normal(0, 0.05, n)
        rounded = lambda x: np.floor(np.clip(x, 1, 5) + 0.5)
        agree = np.flatnonzero(rounded(cand) == rounded(human))
        planted = rng.choice(agree, int(round(drop_points / 100 * n)), replace=False)
        cand[planted] = np.where(rounded(human[planted]) >= 3, rounded(human[planted]) - 1,
                                 rounded(human[planted]) + 1)
        stats = slice_stats(METRICS["exact_agreement"], human[:, None], ref[:, None],
                            {"c": cand[:, None]}, ["d"], SCALE, 0.95, 1000,
                            slice_rng(trial, "sim"))[("c", "d")]
        degradation = exact_agreement(human, ref, SCALE) - exact_agreement(human, cand, SCALE)
        check = check_with(degradation=degradation, ci_low=stats.ci_low, ci_high=stats.ci_high,
                           detectable_degradation=stats.detectable_degradation, n=n)
        failures += judge(check, n, gate)[0] == FAIL
    return failures / trials


def test_confident_policy_rarely_fails_an_identical_candidate():
    assert simulate("confident", 0.0) <= 0.05


def test_confident_policy_catches_a_six_point_drop():
    assert simulate("confident", 6.0) >= 0.90


def test_point_policy_catches_a_three_point_drop():
    assert simulate("point", 3.0) >= 0.90


def test_every_check_carries_its_statistics_and_flips(tmp_path, scored_rows):
    frame = scored_rows.copy()
    rounded = lambda x: np.floor(np.clip(x, 1, 5) + 0.5)
    for d in DIMENSIONS:
        ref = frame[f"{d}_ref"].to_numpy()
        cand = ref.copy()
        headline_agree = np.flatnonzero((rounded(ref) == rounded(human_mean(frame, d)))
                                        & (frame.content_type == "headline"))[:17]
        cand[headline_agree] = rounded(ref[headline_agree]) + np.where(
            rounded(ref[headline_agree]) >= 3, -1.2, 1.2)
        frame[f"{d}_cand"] = cand
    out = tmp_path / "run"
    run_cli("run", "--config", str(columns_config(tmp_path, frame)), "--out", str(out),
            "--quiet")
    summary = json.loads((out / "summary.json").read_text())
    for check in summary["checks"]:
        for key in ("ci_low", "ci_high", "p_value", "p_value_adjusted",
                    "detectable_degradation", "human_ceiling", "reason"):
            assert check[key] is not None, (key, check)
        assert check["ci_low"] <= check["degradation"] <= check["ci_high"] or \
            check["ci_low"] == check["ci_high"]
    clarity = next(c for c in summary["checks"]
                   if c["slice"] == "headlines" and c["dimension"] == "clarity")
    assert (clarity["flips_to_disagree"], clarity["flips_to_agree"]) == (17, 0)
    assert clarity["p_value"] == pytest.approx(mcnemar_exact(17, 0))
    ceiling = next(m["value"] for m in summary["metrics"]
                   if m["scorer"] == "_human_ceiling" and m["slice"] == "all"
                   and m["dimension"] == "clarity" and m["metric"] == "exact_agreement")
    both = frame[["clarity_r1", "clarity_r2"]].dropna()
    assert ceiling == pytest.approx((both.clarity_r1 == both.clarity_r2).mean() * 100)
    assert "CI" in (out / "summary.md").read_text()
