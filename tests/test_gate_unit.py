"""The gate's decision rules, one function at a time, with hand-computed expectations.

Boundaries are tested on both sides (degradation == max_drop, n == min_rows, p == alpha)
and every p-value adjustment is compared with statsmodels. Reasons are checked with
``startswith`` so a later addition to a reason does not break the test.
These tests are also the ones mutation testing runs against validator/judge/gate.py
(see tests/README.md).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from statsmodels.stats.multitest import multipletests

from validator.config import Config, GateConfig
from validator.judge.gate import (FAIL, INCONCLUSIVE, PASS, Check, GateResult, adjust,
                                  apply_correction, build_checks, corrected_verdicts,
                                  evaluate_gate, explain_inconclusive, gate_result,
                                  gated_metrics, guard_metric, judge, policy_verdicts,
                                  require_serving_isa, rows_needed, run_verdicts)
from test_stats import check_with as stats_check_with
from validator.metrics import compute_metrics, exact_agreement, get_metric, mae


def check_with(**fields) -> Check:
    """test_stats' check, on a slice large enough to resolve max_drop by default."""
    return stats_check_with(**{"detectable_degradation": 0.5, **fields})


def verdict_of(policy: str, slice_rows: int = 400, min_rows: int = 50, **fields):
    return judge(check_with(**fields), slice_rows, GateConfig(policy=policy, min_rows=min_rows))


# -- Check / GateResult ------------------------------------------------------------------

def test_as_dict_turns_only_nan_floats_into_none():
    check = check_with(p_value=math.nan, human_ceiling=math.nan, ci_low=0.0, n=0)
    out = check.as_dict()
    assert list(out) == list(Check.__dataclass_fields__)
    assert out["p_value"] is None and out["human_ceiling"] is None
    assert out["ci_low"] == 0.0 and out["n"] == 0 and out["candidate"] == "c"
    assert out["degradation"] == 2.0 and out["reason"] == ""


def test_by_verdict_selects_checks_of_one_verdict_in_order():
    checks = [check_with(verdict=v, slice=str(i))
              for i, v in enumerate([PASS, FAIL, PASS, INCONCLUSIVE])]
    result = GateResult(FAIL, 1, checks)
    assert [c.slice for c in result.by_verdict(PASS)] == ["0", "2"]
    assert [c.slice for c in result.by_verdict(FAIL)] == ["1"]
    assert result.by_verdict("other") == []


# -- judge: the order of the rules -------------------------------------------------------

@pytest.mark.parametrize("policy", ["point", "confident", "non_inferiority"])
def test_a_slice_without_rows_fails_before_any_other_rule(policy):
    verdict, reason = verdict_of(policy, slice_rows=0, n=0, degradation=math.nan,
                                 ci_low=math.nan, ci_high=math.nan)
    assert (verdict, reason) == (FAIL, "the slice has no rows in the gate sample")


@pytest.mark.parametrize("policy", ["point", "confident", "non_inferiority"])
def test_min_rows_is_inclusive(policy):
    verdict, reason = verdict_of(policy, slice_rows=1, n=49, degradation=5.0, ci_low=4.0,
                                 ci_high=6.0)
    assert verdict == INCONCLUSIVE
    assert reason.startswith("only 49 rated rows, fewer than min_rows 50")
    at = verdict_of(policy, slice_rows=1, n=50, degradation=5.0, ci_low=4.0, ci_high=6.0)
    assert at[0] == FAIL  # n == min_rows is enough rows to decide


@pytest.mark.parametrize("fields", [{"degradation": math.nan},
                                    {"ci_low": math.nan},
                                    {"degradation": math.nan, "ci_low": math.nan}])
def test_an_undefined_metric_is_inconclusive(fields):
    for policy in ("point", "confident", "non_inferiority"):
        verdict, reason = verdict_of(policy, **fields)
        assert verdict == INCONCLUSIVE
        assert reason.startswith("the metric is undefined on this slice (constant ratings)")


# -- judge: point ------------------------------------------------------------------------

def test_point_fails_only_above_max_drop():
    assert verdict_of("point", degradation=1.5) == (
        FAIL, "degradation 1.5 exceeds max_drop 1")
    assert verdict_of("point", degradation=1.0) == (
        PASS, "degradation 1 within max_drop 1")  # equal is within
    assert verdict_of("point", degradation=-3.25) == (
        PASS, "degradation -3.25 within max_drop 1")


def test_point_is_inconclusive_when_the_slice_cannot_resolve_max_drop():
    verdict, reason = verdict_of("point", degradation=0.5, detectable_degradation=1.25)
    assert verdict == INCONCLUSIVE
    assert reason.startswith("too few rows to resolve max_drop 1: the smallest detectable "
                             "degradation here is 1.25")
    # detectable == max_drop resolves it
    assert verdict_of("point", degradation=0.5, detectable_degradation=1.0)[0] == PASS
    # a failure is reported even when the slice is too small to resolve max_drop
    assert verdict_of("point", degradation=3.0, detectable_degradation=9.0)[0] == FAIL


# -- judge: confident --------------------------------------------------------------------

def test_confident_fails_when_the_whole_ci_lies_above_max_drop():
    assert verdict_of("confident", ci_low=1.5, ci_high=4.0) == (
        FAIL, "CI [1.5, 4] lies above max_drop 1")
    assert verdict_of("confident", ci_low=1.0, ci_high=4.0)[0] == INCONCLUSIVE  # touches


def test_confident_passes_when_the_whole_ci_lies_below_max_drop():
    assert verdict_of("confident", ci_low=-2.0, ci_high=0.75) == (
        PASS, "CI [-2, 0.75] lies below max_drop 1")
    assert verdict_of("confident", ci_low=-2.0, ci_high=1.0)[0] == INCONCLUSIVE  # touches


def test_confident_straddling_ci_is_inconclusive_and_says_why():
    verdict, reason = verdict_of("confident", ci_low=0.123456, ci_high=2.5,
                                 detectable_degradation=1.75)
    assert verdict == INCONCLUSIVE
    assert reason.startswith("CI [0.123, 2.5] straddles max_drop 1; too few rows to resolve "
                             "max_drop 1: the smallest detectable degradation here is 1.75")


def test_confident_ignores_the_point_estimate():
    assert verdict_of("confident", degradation=5.0, ci_low=-1.0, ci_high=0.5)[0] == PASS
    assert verdict_of("confident", degradation=-5.0, ci_low=1.5, ci_high=2.0)[0] == FAIL


# -- judge: non_inferiority --------------------------------------------------------------

def test_non_inferiority_needs_the_upper_bound_strictly_below_max_drop():
    assert verdict_of("non_inferiority", ci_low=-1.0, ci_high=0.5) == (
        PASS, "non-inferior: CI [-1, 0.5] upper bound below max_drop 1")
    verdict, reason = verdict_of("non_inferiority", ci_low=-1.0, ci_high=1.0)
    assert verdict == FAIL
    assert reason.startswith("non-inferiority not shown: CI [-1, 1] upper bound reaches "
                             "max_drop 1")


def test_thresholds_come_from_the_check_and_are_formatted_compactly():
    assert verdict_of("point", degradation=0.3, max_drop=0.25) == (
        FAIL, "degradation 0.3 exceeds max_drop 0.25")
    assert verdict_of("confident", ci_low=0.1, ci_high=0.2, max_drop=2.5,
                      detectable_degradation=0.1) == (
        PASS, "CI [0.1, 0.2] lies below max_drop 2.5")


# -- judge / policy_verdicts: fail closed on NaN and on a bad max_drop --------------------

@pytest.mark.parametrize("drop", [math.nan, math.inf, -0.5])
def test_a_max_drop_that_is_not_a_finite_number_at_least_zero_fails(drop):
    for policy in ("point", "confident", "non_inferiority"):
        assert verdict_of(policy, max_drop=drop) == (
            FAIL, f"max_drop {drop!r} is not a finite number >= 0")
    assert verdict_of("point", max_drop=0.0, degradation=0.0, ci_low=-1.0, ci_high=0.0,
                      detectable_degradation=0.0)[0] == PASS  # zero is allowed


def test_policy_verdicts_broadcast_over_checks_and_never_pass_on_nan():
    nan = math.nan
    d = np.array([0.5, 1.5, 1.0, nan, 0.5, 0.5])
    low = np.array([-1.0, 1.2, 1.0, nan, nan, -1.0])
    high = np.array([0.9, 2.0, 3.0, nan, 0.5, 1.0])
    detectable = np.array([0.5, 0.5, 0.5, 0.5, nan, 2.0])
    assert policy_verdicts("point", d, low, high, detectable, 1.0).tolist() == [
        PASS, FAIL, PASS, FAIL, INCONCLUSIVE, INCONCLUSIVE]
    assert policy_verdicts("confident", d, low, high, detectable, 1.0).tolist() == [
        PASS, FAIL, INCONCLUSIVE, INCONCLUSIVE, PASS, INCONCLUSIVE]
    assert policy_verdicts("non_inferiority", d, low, high, detectable, 1.0).tolist() == [
        PASS, FAIL, FAIL, FAIL, PASS, FAIL]
    # max_drop per check; a NaN max_drop never passes
    drops = np.array([0.4, 2.0, nan, 1.0, 1.0, 1.0])
    assert policy_verdicts("point", d, low, high, detectable, drops).tolist()[:3] == [
        FAIL, PASS, FAIL]


# -- adjust / apply_correction -----------------------------------------------------------

def test_adjust_none_returns_a_copy_of_the_p_values():
    p_values = [0.5, 0.01, math.nan]
    adjusted = adjust(p_values, "none")
    assert adjusted[:2] == [0.5, 0.01] and math.isnan(adjusted[2])
    assert adjusted is not p_values


@pytest.mark.parametrize("method, statsmodels_name", [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjust_matches_statsmodels_and_leaves_unknown_p_values_out(method, statsmodels_name):
    p_values = [0.001, math.nan, 0.02, 0.03, 0.5, math.nan, 0.04]
    known = [p for p in p_values if not math.isnan(p)]
    expected = iter(multipletests(known, method=statsmodels_name)[1])
    adjusted = adjust(p_values, method)
    assert isinstance(adjusted, list) and len(adjusted) == len(p_values)
    for p, got in zip(p_values, adjusted):
        if math.isnan(p):
            assert math.isnan(got)
        else:
            assert got == pytest.approx(next(expected), abs=1e-15)


def test_holm_and_bh_differ_on_a_hand_example():
    # Holm: sorted p * (m - rank) made monotone; BH: p * m / rank made monotone from the top
    assert adjust([0.01, 0.02, 0.03], "holm") == pytest.approx([0.03, 0.04, 0.04])
    assert adjust([0.01, 0.02, 0.03], "bh") == pytest.approx([0.03, 0.03, 0.03])
    assert adjust([0.04, 0.01], "holm") == pytest.approx([0.04, 0.02])


def test_adjust_with_only_unknown_p_values_stays_unknown():
    assert all(math.isnan(p) for p in adjust([math.nan, math.nan], "holm"))
    assert adjust([], "bh") == []


def test_correction_keeps_significant_failures_and_downgrades_the_rest():
    # the correction tests "degradation <= max_drop" (p_value_max_drop) at the false-fail
    # budget; the "no change" p-values are adjusted alongside, for the report only
    checks = [check_with(verdict=FAIL, p_value=p / 2, p_value_max_drop=p,
                         reason="degradation 2 exceeds max_drop 1")
              for p in (0.001, 0.02, 0.03, 0.5)]
    corrected = apply_correction(checks, GateConfig(policy="point", correction="holm",
                                                    false_fail_budget=0.05))
    expected = multipletests([0.001, 0.02, 0.03, 0.5], method="holm")[1]  # .004 .06 .06 .5
    assert [c.p_value_max_drop_adjusted for c in corrected] == pytest.approx(list(expected))
    assert [c.p_value_adjusted for c in corrected] == pytest.approx(list(expected / 2))
    assert [c.p_value_max_drop for c in corrected] == [0.001, 0.02, 0.03, 0.5]
    assert [c.p_value for c in corrected] == [0.0005, 0.01, 0.015, 0.25]
    assert [c.verdict for c in corrected] == [FAIL, INCONCLUSIVE, INCONCLUSIVE, INCONCLUSIVE]
    assert corrected[0].reason == "degradation 2 exceeds max_drop 1"
    assert corrected[1].reason == (
        "degradation 2 exceeds max_drop 1, but not beyond max_drop after holm correction "
        "at the false-fail budget 0.05 (adjusted p=0.06)")
    assert all(isinstance(c.p_value_max_drop_adjusted, float) for c in corrected)


def test_correction_level_is_the_false_fail_budget_and_p_equal_to_it_is_not_significant():
    gate = GateConfig(policy="point", correction="bh", false_fail_budget=0.1, confidence=0.6)
    # one check: its adjusted p-value is its p-value
    at_budget = apply_correction([check_with(verdict=FAIL, p_value_max_drop=0.1)], gate)[0]
    assert at_budget.verdict == INCONCLUSIVE
    assert at_budget.reason.endswith("bh correction at the false-fail budget 0.1 "
                                     "(adjusted p=0.1)")
    below = apply_correction([check_with(verdict=FAIL, p_value_max_drop=0.0999)], gate)[0]
    assert below.verdict == FAIL
    between = apply_correction([check_with(verdict=FAIL, p_value_max_drop=0.07)],
                               GateConfig(policy="confident", correction="holm",
                                          false_fail_budget=0.05, confidence=0.8))[0]
    assert between.verdict == INCONCLUSIVE  # 0.07 < 0.1 but not < 0.05
    # the "no change" p-value plays no part in the decision
    small_p = apply_correction([check_with(verdict=FAIL, p_value=1e-9,
                                           p_value_max_drop=0.5)], gate)[0]
    assert small_p.verdict == INCONCLUSIVE


def test_correction_never_touches_passes_inconclusives_or_zero_row_failures():
    gate = GateConfig(policy="point", correction="holm")
    checks = [check_with(verdict=PASS, p_value_max_drop=0.9, reason="r"),
              check_with(verdict=INCONCLUSIVE, p_value_max_drop=0.9, reason="r"),
              check_with(verdict=FAIL, p_value=math.nan, p_value_max_drop=0.9, n=0,
                         reason="no rows"),
              check_with(verdict=FAIL, p_value_max_drop=0.9, n=1, reason="r")]
    corrected = apply_correction(checks, gate)
    assert [c.verdict for c in corrected] == [PASS, INCONCLUSIVE, FAIL, INCONCLUSIVE]
    assert [c.reason for c in corrected[:3]] == ["r", "r", "no rows"]
    assert math.isnan(corrected[2].p_value_adjusted)


def test_correction_never_softens_an_unknown_p_value_or_a_non_inferiority_failure():
    gate = GateConfig(policy="confident", correction="holm")
    unknown = apply_correction([check_with(verdict=FAIL, p_value_max_drop=math.nan),
                                check_with(verdict=FAIL, p_value_max_drop=0.9)], gate)
    assert [c.verdict for c in unknown] == [FAIL, INCONCLUSIVE]  # NaN fails closed
    assert math.isnan(unknown[0].p_value_max_drop_adjusted)
    assert unknown[1].p_value_max_drop_adjusted == 0.9  # NaN left out of the family
    kept = apply_correction([check_with(verdict=FAIL, p_value_max_drop=0.9, reason="r")],
                            GateConfig(policy="non_inferiority", correction="holm"))[0]
    assert (kept.verdict, kept.reason) == (FAIL, "r")
    assert kept.p_value_max_drop_adjusted == 0.9


def test_without_correction_failures_stay_and_p_values_are_copied():
    checks = [check_with(verdict=FAIL, p_value=0.7, p_value_adjusted=-1.0,
                         p_value_max_drop=0.8, p_value_max_drop_adjusted=-1.0)]
    corrected = apply_correction(checks, GateConfig(policy="point", correction="none"))[0]
    assert corrected.verdict == FAIL and corrected.p_value_adjusted == 0.7
    assert corrected.p_value_max_drop_adjusted == 0.8
    assert corrected.reason == ""


# -- gate_result ---------------------------------------------------------------------------

@pytest.mark.parametrize("verdicts, on_inconclusive, expected", [
    ([PASS, PASS], "fail", (PASS, 0)),
    ([PASS, FAIL], "warn", (FAIL, 1)),
    ([INCONCLUSIVE, FAIL], "warn", (FAIL, 1)),
    ([PASS, INCONCLUSIVE], "fail", (INCONCLUSIVE, 1)),
    ([PASS, INCONCLUSIVE], "warn", (PASS, 0)),
    ([INCONCLUSIVE, INCONCLUSIVE], "warn", (INCONCLUSIVE, 1)),  # nothing decided
    ([], "warn", (INCONCLUSIVE, 1)),
])
def test_decide_fails_closed(verdicts, on_inconclusive, expected):
    checks = [check_with(verdict=v) for v in verdicts]
    result = gate_result(checks, on_inconclusive)
    assert (result.verdict, result.exit_code) == expected
    assert result.checks == checks


def test_corrected_verdicts_per_run_and_their_conditions():
    verdicts = np.array([[FAIL, FAIL, FAIL, FAIL, PASS, INCONCLUSIVE],
                         [FAIL, PASS, FAIL, FAIL, FAIL, FAIL]], dtype=object)
    adjusted = np.array([[0.01, 0.05, math.nan, 0.9, 0.9, 0.9],
                         [0.049, 0.9, 0.06, 0.05, 0.0, 1.0]])
    rated = np.array([10, 10, 10, 0, 10, 10])
    for policy in ("point", "confident"):
        got = corrected_verdicts(verdicts, adjusted, rated,
                                 GateConfig(policy=policy, correction="holm",
                                            false_fail_budget=0.05))
        assert got.tolist() == [[FAIL, INCONCLUSIVE, FAIL, FAIL, PASS, INCONCLUSIVE],
                                [FAIL, PASS, INCONCLUSIVE, FAIL, FAIL, INCONCLUSIVE]]
    for gate in (GateConfig(policy="point", correction="none"),
                 GateConfig(policy="non_inferiority", correction="bh")):
        assert corrected_verdicts(verdicts, adjusted, rated, gate).tolist() == \
            verdicts.tolist()


@pytest.mark.parametrize("verdicts, on_inconclusive, expected", [
    ([[PASS, PASS], [PASS, FAIL], [INCONCLUSIVE, INCONCLUSIVE], [PASS, INCONCLUSIVE]], "fail",
     [PASS, FAIL, INCONCLUSIVE, INCONCLUSIVE]),
    ([[PASS, PASS], [INCONCLUSIVE, FAIL], [INCONCLUSIVE, INCONCLUSIVE], [PASS, INCONCLUSIVE]],
     "warn", [PASS, FAIL, INCONCLUSIVE, PASS]),
])
def test_run_verdicts_decide_each_run_independently(verdicts, on_inconclusive, expected):
    got = run_verdicts(np.array(verdicts, dtype=object), on_inconclusive)
    assert got.tolist() == expected


def test_gate_result_keeps_the_resamples():
    samples = [np.array([1.0, 2.0])]
    result = gate_result([check_with(verdict=PASS)], "fail", samples)
    assert result.resamples is samples
    assert gate_result([check_with(verdict=PASS)], "fail").resamples == []


def test_a_cpu_lacking_a_serving_feature_makes_any_run_inconclusive():
    passed = gate_result([check_with(verdict=PASS)], "fail")
    assert require_serving_isa(passed, []) is passed
    held = require_serving_isa(passed, ["avx512_vnni"])
    assert (held.verdict, held.exit_code, held.checks) == (INCONCLUSIVE, 1, passed.checks)
    failed = require_serving_isa(gate_result([check_with(verdict=FAIL)], "fail"), ["amx_tile"])
    assert (failed.verdict, failed.exit_code) == (INCONCLUSIVE, 1)


# -- rows_needed / explain_inconclusive --------------------------------------------------

def expected_rows(n, sd, gap, z, min_rows):
    return max(math.ceil(n * (z * sd / gap) ** 2), min_rows)


@pytest.mark.parametrize("policy, correction, degradation, z, gap", [
    # a degradation beyond max_drop must reject at the corrected level (Bonferroni bound)
    ("confident", "holm", 1.5, norm.isf(0.05 / 4), 0.5),
    ("point", "bh", 1.5, norm.isf(0.05 / 4), 0.5),
    # without a correction the CI's own level decides
    ("confident", "none", 1.5, norm.isf(0.025), 0.5),
    ("non_inferiority", "holm", 1.5, norm.isf(0.025), 0.5),
    # below max_drop: the CI must clear it
    ("confident", "holm", 0.25, norm.isf(0.025), 0.75),
    ("non_inferiority", "holm", 0.25, norm.isf(0.025), 0.75),
    # point, not beyond max_drop: until the detectable degradation fits in max_drop
    ("point", "holm", 0.25, norm.isf(0.025) + norm.ppf(0.8), 1.0),
    ("point", "holm", 1.0, norm.isf(0.025) + norm.ppf(0.8), 1.0),
])
def test_rows_needed_at_the_observed_degradation(policy, correction, degradation, z, gap):
    gate = GateConfig(policy=policy, correction=correction, confidence=0.95,
                      false_fail_budget=0.05, min_rows=5)
    check = check_with(verdict=INCONCLUSIVE, n=100, degradation=degradation,
                       bootstrap_sd=0.8, max_drop=1.0)
    assert rows_needed(check, gate, tested=4) == expected_rows(100, 0.8, gap, z, 5)


def test_rows_needed_only_for_inconclusive_checks_with_a_known_spread():
    gate = GateConfig(policy="confident", min_rows=50, false_fail_budget=0.1, confidence=0.9)
    base = dict(verdict=INCONCLUSIVE, n=40, degradation=1.2, bootstrap_sd=0.1, max_drop=1.0)
    assert rows_needed(check_with(**{**base, "verdict": PASS}), gate, 3) is None
    assert rows_needed(check_with(**{**base, "verdict": FAIL}), gate, 3) is None
    assert rows_needed(check_with(**{**base, "bootstrap_sd": math.nan}), gate, 3) is None
    assert rows_needed(check_with(**{**base, "degradation": 1.0}), gate, 3) is None  # gap 0
    # a small spread: the answer is at least min_rows
    assert rows_needed(check_with(**base), gate, 3) == 50
    # no tested checks counts as one
    wide = check_with(**{**base, "bootstrap_sd": 2.0})
    assert rows_needed(wide, gate, 0) == expected_rows(40, 2.0, 0.2, norm.isf(0.1), 50)
    assert rows_needed(wide, gate, 1) == rows_needed(wide, gate, 0)
    assert rows_needed(wide, gate, 2) == expected_rows(40, 2.0, 0.2, norm.isf(0.05), 50)


def test_explain_inconclusive_counts_tested_checks_and_extends_the_reason():
    gate = GateConfig(policy="confident", correction="holm", false_fail_budget=0.05,
                      min_rows=5)
    undecided = check_with(verdict=INCONCLUSIVE, reason="r", n=100, degradation=1.5,
                           bootstrap_sd=0.8, p_value_max_drop=0.2)
    checks = [undecided,
              check_with(verdict=PASS, reason="p", p_value_max_drop=0.9, bootstrap_sd=0.8),
              check_with(verdict=FAIL, reason="f", p_value_max_drop=0.01),
              check_with(verdict=INCONCLUSIVE, reason="u", bootstrap_sd=math.nan,
                         p_value_max_drop=math.nan)]
    out = explain_inconclusive(checks, gate)
    needed = expected_rows(100, 0.8, 0.5, norm.isf(0.05 / 3), 5)  # three tested checks
    assert out[0].rows_needed == needed
    assert out[0].reason == (f"r; about {needed} rated rows would decide it at the "
                             "observed degradation")
    assert out[1:] == checks[1:]
    assert out[1].rows_needed is None and out[3].rows_needed is None


# -- build_checks / evaluate_gate on a small in-memory run -------------------------------

HUMAN = pd.DataFrame({"clarity": [1, 2, 3, 4, 5, 3, 2, 4, 1, 5],
                      "tone": [2, 2, 3, 3, 4, 4, 5, 5, 1, np.nan]}, dtype=float)
REF = HUMAN.fillna(3).to_numpy() + 0.2
CAND = REF.copy()
CAND[[0, 1, 2], 0] += 1.0  # three clarity rows move one rating point off
MASKS = pd.DataFrame({"all": [True] * 10, "even": [i % 2 == 0 for i in range(10)],
                      "none": [False] * 10})


def small_config(**gate) -> Config:
    config = Config.model_validate({
        "sample": {"path": "unused.csv"},
        "rubric": {"scale": [1, 5], "dimensions": {"clarity": "clarity", "tone": "tone"}},
        "reference": {"name": "ref", "backend": "columns", "columns": "{dimension}"},
        "candidates": [{"name": "cand", "backend": "columns", "columns": "{dimension}"}],
        "gate": {"metric": "exact_agreement", "max_drop": 1.0, "min_rows": 3,
                 "policy": "point", "bootstrap_resamples": 200, "correction": "none",
                 **gate},
        "seed": 3})
    return config


def run_gate(config: Config, raters=None, with_resamples=False):
    scores = {"ref": REF, "cand": CAND}
    metrics = compute_metrics(HUMAN, scores, MASKS, (1, 5), raters)
    checks, resamples = build_checks(metrics, HUMAN, scores, MASKS, config)
    assert len(resamples) == len(checks)
    return (checks, resamples) if with_resamples else checks


def test_build_checks_returns_every_checks_resamples_and_their_spread():
    config = small_config(bootstrap_resamples=150)
    checks, resamples = run_gate(config, with_resamples=True)
    for check, samples in zip(checks, resamples):
        assert isinstance(samples, np.ndarray)
        assert len(samples) == (0 if check.slice == "none" else 150)
        finite = samples[np.isfinite(samples)]
        if len(finite) > 1:
            assert check.bootstrap_sd == pytest.approx(finite.std(ddof=1))
            assert check.ci_low == pytest.approx(np.percentile(finite, 2.5))
            assert check.ci_high == pytest.approx(max(  # the unseen-flips margin, if any
                np.percentile(finite, 97.5), check.degradation + check.unseen_flips_margin))
            assert check.p_value_max_drop == pytest.approx(
                norm.sf((check.degradation - check.max_drop) / check.bootstrap_sd)
                if check.bootstrap_sd > 0 else float(check.degradation <= check.max_drop))
            assert check.p_value_max_drop_adjusted == check.p_value_max_drop  # no correction
    clarity = checks[0]
    assert (clarity.slice, clarity.dimension) == ("all", "clarity")
    assert 0 < clarity.bootstrap_sd < 30 and 0 < clarity.p_value_max_drop < 0.5


def test_build_checks_makes_one_check_per_slice_candidate_and_dimension_in_order():
    checks = run_gate(small_config())
    assert [(c.slice, c.dimension) for c in checks] == [
        (s, d) for s in ("all", "even", "none") for d in ("clarity", "tone", "_all")]
    assert {c.candidate for c in checks} == {"cand"}
    assert {c.metric for c in checks} == {"exact_agreement"}
    by_key = {(c.slice, c.dimension): c for c in checks}
    clarity = by_key[("all", "clarity")]
    assert clarity.n == 10
    assert clarity.reference == exact_agreement(HUMAN.clarity.to_numpy(), REF[:, 0], (1, 5))
    assert clarity.reference == 100.0 and clarity.candidate_value == 70.0
    assert clarity.degradation == 30.0
    assert (clarity.flips_to_disagree, clarity.flips_to_agree) == (3, 0)
    assert clarity.p_value == pytest.approx(0.25)  # McNemar exact: 2 * 0.5 ** 3
    assert clarity.p_value_adjusted == clarity.p_value
    assert clarity.ci_low <= 30.0 <= clarity.ci_high
    assert clarity.verdict == FAIL and clarity.max_drop == 1.0
    assert by_key[("all", "tone")].n == 9  # one unrated tone row
    assert by_key[("all", "tone")].degradation == 0.0
    assert by_key[("all", "_all")].n == 10
    assert by_key[("all", "_all")].degradation == pytest.approx(100 - 100 * 16 / 19)
    assert by_key[("even", "clarity")].n == 5
    assert by_key[("even", "clarity")].degradation == 40.0  # rows 0 and 2 of 0, 2, 4, 6, 8
    assert math.isnan(clarity.human_ceiling)  # no raters given
    none = by_key[("none", "clarity")]
    assert none.n == 0 and none.verdict == FAIL and "no rows" in none.reason


def test_build_checks_uses_overrides_and_the_human_ceiling():
    config = small_config(overrides=[{"slice": "even", "max_drop": 70.0},
                                     {"dimension": "tone", "max_drop": 0.5},
                                     {"candidate": "cand", "slice": "all",
                                      "dimension": "_all", "max_drop": 20.0}])
    raters = {"clarity": np.column_stack([HUMAN.clarity, HUMAN.clarity]),
              "tone": np.column_stack([HUMAN.tone, HUMAN.tone.fillna(1) + 1])}
    checks = {(c.slice, c.dimension): c for c in run_gate(config, raters)}
    assert checks[("even", "clarity")].max_drop == 70.0
    assert checks[("even", "clarity")].verdict != FAIL
    assert checks[("all", "tone")].max_drop == 0.5
    assert checks[("all", "clarity")].max_drop == 1.0
    assert checks[("all", "_all")].max_drop == 20.0
    assert checks[("all", "_all")].verdict != FAIL  # 15.8 points within 20
    assert checks[("all", "clarity")].human_ceiling == 100.0
    # the second rater is one point above the first; 5 + 1 is clipped to 5 (2 of 9 agree)
    assert checks[("all", "tone")].human_ceiling == pytest.approx(200 / 9)


def test_build_checks_degradation_follows_the_metric_direction():
    config = small_config(metric="mean_absolute_error", max_drop=0.25)
    clarity = {(c.slice, c.dimension): c for c in run_gate(config)}[("all", "clarity")]
    h = HUMAN.clarity.to_numpy()
    assert clarity.reference == pytest.approx(mae(h, REF[:, 0], (1, 5)))
    # candidate error minus reference error: positive (worse); 5.2 is clipped to 5
    expected = mae(h, CAND[:, 0], (1, 5)) - mae(h, REF[:, 0], (1, 5))
    assert clarity.degradation == pytest.approx(expected) and expected > 0.25
    assert clarity.verdict == FAIL and clarity.metric == "mean_absolute_error"


def test_build_checks_applies_the_correction():
    config = small_config(correction="holm")
    checks = {(c.slice, c.dimension): c for c in run_gate(config)}
    clarity = checks[("all", "clarity")]
    # 3 flips -> p = 0.25, never significant: the failure becomes inconclusive
    assert clarity.verdict == INCONCLUSIVE and "holm" in clarity.reason
    assert clarity.p_value_adjusted >= clarity.p_value
    assert checks[("none", "clarity")].verdict == FAIL  # a slice without rows still fails


UNITS = {"spearman": "correlation", "quadratic_kappa": "kappa",
         "adjacent_agreement": "percentage points"}


@pytest.mark.parametrize("metric", list(UNITS))
def test_a_metric_blind_to_a_shift_brings_location_guard_checks(metric):
    """candidate = reference + 1 (clipped): the guard (MAE, rating points) checks every
    slice and dimension after the gate metric's, with its own threshold, and fails."""
    config = small_config(metric=metric, max_drop=0.02, correction="holm",
                          guard_max_drop=0.3)
    scores = {"ref": REF, "cand": REF + 1.0}
    metrics = compute_metrics(HUMAN, scores, MASKS, (1, 5))
    checks, resamples = build_checks(metrics, HUMAN, scores, MASKS, config)
    assert len(checks) == len(resamples) == 18
    gate, guard = checks[:9], checks[9:]
    assert {(c.role, c.metric, c.unit) for c in gate} == {("gate", metric, UNITS[metric])}
    assert {(c.role, c.metric, c.unit, c.max_drop) for c in guard} == {
        ("location_guard", "mean_absolute_error", "rating points", 0.3)}
    assert [(c.slice, c.dimension) for c in guard] == [(c.slice, c.dimension) for c in gate]
    clarity = guard[0]
    h = HUMAN.clarity.to_numpy()
    assert clarity.degradation == pytest.approx(mae(h, REF[:, 0] + 1, (1, 5))
                                                - mae(h, REF[:, 0], (1, 5)))
    assert clarity.degradation > 0.3 and clarity.verdict == FAIL
    assert clarity.reason.startswith("location guard (mean_absolute_error, rating points): ")
    # one correction over both families: the adjusted threshold p-values see 12 tested
    tested = [c for c in checks if not math.isnan(c.p_value_max_drop)]
    assert [c.p_value_max_drop_adjusted for c in tested] == pytest.approx(list(
        multipletests([c.p_value_max_drop for c in tested], method="holm")[1]))
    assert guard_metric(config.gate)[1] == 0.3 and gated_metrics(config.gate) == [
        metric, "mean_absolute_error"]
    default = GateConfig(metric=metric)
    assert guard_metric(default)[1] == 0.05
    assert default.max_drop == get_metric(metric).max_drop


@pytest.mark.parametrize("metric", ["exact_agreement", "mean_absolute_error"])
def test_metrics_that_see_a_shift_have_no_guard(metric):
    config = small_config(metric=metric)
    assert guard_metric(config.gate) is None and gated_metrics(config.gate) == [metric]
    checks = run_gate(config)
    assert len(checks) == 9 and {c.role for c in checks} == {"gate"}


def test_build_checks_names_an_unknown_metric():
    # the plan names unknown metrics and override slices first (tests/test_plan.py)
    with pytest.raises(KeyError, match=r"unknown metric 'accuracy' \(valid: adjacent_agreement"):
        build_checks(pd.DataFrame(), HUMAN, {}, MASKS, small_config(metric="accuracy"))


def test_evaluate_gate_returns_the_decision_over_all_checks():
    scores = {"ref": REF, "cand": CAND}
    metrics = compute_metrics(HUMAN, scores, MASKS, (1, 5))
    result = evaluate_gate(metrics, HUMAN, scores, MASKS[["all"]], small_config())
    assert (result.verdict, result.exit_code) == (FAIL, 1)
    assert len(result.checks) == 3
    human, same, masks = tiled(40)  # 400 identical rows rule out max_drop 1 (0.92 points)
    metrics = compute_metrics(human, same, masks, (1, 5))
    config = small_config(on_inconclusive="warn", policy="confident")
    result = evaluate_gate(metrics, human, same, masks[["all"]], config)
    assert (result.verdict, result.exit_code) == (PASS, 0)
    human, same, masks = tiled(1)   # 10 cannot: the CI is +-30.8 points, not [0, 0]
    result = evaluate_gate(compute_metrics(human, same, masks, (1, 5)), human, same,
                           masks[["all"]], config)
    assert (result.verdict, result.exit_code) == (INCONCLUSIVE, 1)
    assert [c.unseen_flips_margin for c in result.checks] == [pytest.approx(30.85, abs=0.01)] * 3
    assert all("of its CI are flips this slice's scored rows may not show" in c.reason
               and "with none flipped, 368 scored rows rule out max_drop 1" in c.reason
               and c.rows_needed is None for c in result.checks)


def tiled(times: int):
    """The small world's human ratings and masks repeated, and an identical candidate."""
    human = pd.concat([HUMAN] * times, ignore_index=True)
    reference = np.tile(REF, (times, 1))
    masks = pd.concat([MASKS] * times, ignore_index=True)
    return human, {"ref": reference, "cand": reference}, masks


def test_evaluate_gate_keeps_the_resamples_and_applies_max_concentration():
    scores = {"ref": REF, "cand": CAND}
    metrics = compute_metrics(HUMAN, scores, MASKS, (1, 5))
    config = small_config(max_concentration=0.6,
                          overrides=[{"dimension": "_all", "max_drop": 20.0}])
    checks, resamples = build_checks(metrics, HUMAN, scores, MASKS[["all"]], config)
    result = evaluate_gate(metrics, HUMAN, scores, MASKS[["all"]], config)
    assert len(result.resamples) == 3
    for got, expected in zip(result.resamples, resamples):
        assert np.array_equal(got, expected, equal_nan=True)
    pooled = {c.dimension: c for c in checks}["_all"]
    assert pooled.verdict != FAIL  # 15.8 points within 20 ...
    pooled = {c.dimension: c for c in result.checks}["_all"]
    assert pooled.verdict == FAIL  # ... but all of the loss is in clarity
    assert pooled.reason.startswith("loss concentrated in clarity")


def test_evaluate_gate_follows_on_inconclusive():
    human, same, masks = tiled(40)
    metrics = compute_metrics(human, same, masks, (1, 5))
    masks = masks[["all", "even"]]
    for on_inconclusive, expected in (("fail", (INCONCLUSIVE, 1)), ("warn", (PASS, 0))):
        config = small_config(on_inconclusive=on_inconclusive, policy="confident",
                              min_rows=250)
        result = evaluate_gate(metrics, human, same, masks, config)
        assert {c.verdict for c in result.checks} == {PASS, INCONCLUSIVE}  # "even": 200
        assert (result.verdict, result.exit_code) == expected


def test_warn_never_ships_a_check_whose_whole_ci_lies_above_max_drop():
    """on_inconclusive: warn forgives checks too small to decide, not a loss the
    correction softened (a hostile trial diluted Holm's family with trivial slices)."""
    softened = Check(candidate="c", slice="all", dimension="_all", metric="exact_agreement",
                     n=500, reference=60.0, candidate_value=57.0, degradation=3.0,
                     ci_low=1.5, ci_high=4.5, max_drop=1.0, verdict=INCONCLUSIVE,
                     reason="", p_value=0.01, p_value_adjusted=0.3,
                     detectable_degradation=2.0, flips_to_disagree=20, flips_to_agree=5,
                     human_ceiling=70.0)
    small = replace(softened, slice="tiny", ci_low=-3.0, ci_high=5.0)
    passing = replace(softened, slice="big", ci_low=-0.5, ci_high=0.5, verdict=PASS)
    assert gate_result([softened, passing], "warn").verdict == INCONCLUSIVE
    assert gate_result([small, passing], "warn").verdict == PASS
    assert gate_result([small, passing], "fail").verdict == INCONCLUSIVE


def test_the_likely_loss_rule_screens_with_benjamini_hochberg_within_the_candidate():
    """Under warn, a Holm-softened failure blocks only when Benjamini-Hochberg over the
    candidate's checks (or its own p-value below LIKELY_LOSS_LEVEL) still finds its drop
    beyond max_drop: one chance CI above max_drop among 100 lossless checks ships (the
    uncorrected rule blocked 63-73% of lossless INT8 runs of the default), ten real
    losses of the same size do not, nor does one strong loss among 1,000 added checks."""
    base = Check(candidate="c", slice="s0", dimension="_all", metric="exact_agreement",
                 n=500, reference=60.0, candidate_value=60.0, degradation=0.0,
                 ci_low=-0.5, ci_high=0.5, max_drop=1.0, verdict=PASS, reason="",
                 p_value=0.5, p_value_adjusted=0.5, detectable_degradation=0.8,
                 flips_to_disagree=5, flips_to_agree=5, human_ceiling=70.0,
                 bootstrap_sd=0.25, p_value_max_drop=0.99)
    loss = replace(base, degradation=2.5, ci_low=1.1, ci_high=3.9, verdict=FAIL,
                   p_value_max_drop=0.003)
    gate = small_config(policy="confident", correction="holm", on_inconclusive="warn",
                        false_fail_budget=0.05).gate

    def checks(losses: int) -> list[Check]:
        return [replace(loss if i < losses else base, slice=f"s{i}") for i in range(100)]

    for losses, screened, verdict in ((1, False, PASS), (10, True, INCONCLUSIVE)):
        judged = apply_correction(checks(losses), gate)
        assert [c.verdict for c in judged[:losses]] == [INCONCLUSIVE] * losses  # Holm: 0.3
        assert [c.screened_loss for c in judged[:losses]] == [screened] * losses
        assert gate_result(judged, "warn").verdict == verdict
        other = [replace(c, candidate="other") for c in checks(10)]  # its own family
        assert apply_correction(checks(losses) + other, gate)[:100] == judged
    strong = replace(loss, p_value_max_drop=0.0005)  # diluted: BH asks for 0.00005
    judged = apply_correction([strong] + [replace(base, slice=f"t{i}") for i in range(999)],
                              gate)
    assert judged[0].verdict == INCONCLUSIVE and judged[0].screened_loss
    assert gate_result(judged, "warn").verdict == INCONCLUSIVE


def test_flips_that_never_change_agreement_do_not_give_the_ci_zero_zero():
    """A hostile trial: 12 of 100 rows flip, each where both scorers are wrong, so every
    row's agreement difference is 0 and the bootstrap CI is [0, 0]; the check passed.
    Flips whose effect the ratings do not show count as unseen: the CI keeps a margin and
    the check asks for more rated flipped rows."""
    human = pd.DataFrame({"clarity": np.full(100, 1.0)})
    reference = np.full((100, 1), 2.0)
    reference[:50] = 1.0  # agrees on half the rows
    candidate = reference.copy()
    candidate[60:72] = 3.0  # 12 flips, 2 -> 3, both wrong
    masks = pd.DataFrame({"all": [True] * 100})
    scores = {"ref": reference, "cand": candidate}
    config = small_config(policy="confident", correction="holm", on_inconclusive="fail",
                          min_rows=10, bootstrap_resamples=200)
    result = evaluate_gate(compute_metrics(human, scores, masks, (1, 5)), human, scores,
                           masks, config)
    check = next(c for c in result.checks if c.dimension == "clarity")
    assert check.degradation == 0 and check.flipped_rows == 12
    assert check.flips_to_disagree + check.flips_to_agree == 0
    assert check.unseen_flips_margin > 3 and check.ci_high > check.max_drop
    assert check.verdict == INCONCLUSIVE and "rate more of the slice's flipped rows" \
        in check.reason
    assert result.exit_code == 1


def test_copied_slices_add_no_hypothesis_to_the_correction():
    """A hostile trial added ten copies of existing slices: Holm's family grew, a 20-point
    loss on a 100-row slice became inconclusive and the run passed under warn. A slice
    with exactly the rows of an earlier one repeats its checks (same draws, same numbers)
    and counts once: every verdict and adjusted p-value stays as it was."""
    rng = np.random.default_rng(3)
    human = pd.DataFrame({"clarity": rng.integers(1, 5, 400).astype(float),
                          "tone": rng.integers(1, 5, 400).astype(float)})
    reference = human.to_numpy() + 0.1
    candidate = reference.copy()
    candidate[:20] += 1.0  # 20 of risky's 100 rows lose on both dimensions
    rows = {"risky": range(0, 100), "alpha": range(100, 200), "beta": range(200, 300),
            "gamma": range(300, 400)}
    masks = pd.DataFrame({"all": [True] * 400,
                          **{name: np.isin(np.arange(400), list(r)) for name, r in rows.items()}})
    copied = masks.assign(**{f"{name}_{k}": masks[name] for k in range(10)
                             for name in ("alpha", "beta", "gamma")})
    scores = {"ref": reference, "cand": candidate}
    config = small_config(policy="confident", correction="holm", on_inconclusive="warn",
                          min_rows=10, bootstrap_resamples=400)

    def gate(frame):
        return evaluate_gate(compute_metrics(human, scores, frame, (1, 5)), human, scores,
                             frame, config)

    plain, diluted = gate(masks), gate(copied)
    assert plain.verdict != PASS and diluted.verdict == plain.verdict
    by_name = {(c.slice, c.dimension): c for c in diluted.checks}
    for check in plain.checks:
        again = by_name[(check.slice, check.dimension)]
        assert (again.verdict, again.p_value_max_drop_adjusted, again.screened_loss) == \
            (check.verdict, check.p_value_max_drop_adjusted, check.screened_loss)
    copy = by_name[("alpha_3", "tone")]
    assert copy.same_rows_as == "alpha" and copy.ci_low == by_name[("alpha", "tone")].ci_low


def test_a_few_observed_losses_keep_their_lower_bound_and_block_under_warn():
    """Six of a 50-row slice's rows lose (a 12-point drop), no row gains: the margin for
    flips the rows may not show raises only the upper bound, so the bootstrap's lower
    bound stays above max_drop and the likely loss blocks even under warn (a hostile
    trial passed this when the margin lowered the bound too)."""
    rng = np.random.default_rng(5)
    human = pd.DataFrame({"clarity": rng.integers(1, 5, 400).astype(float),  # 1-4: one
                          "tone": rng.integers(1, 5, 400).astype(float)})    # up is a loss
    reference = human.to_numpy() + 0.1
    candidate = reference.copy()
    candidate[:6] += 1.0  # six losses on both dimensions, all in the small slice
    masks = pd.DataFrame({"all": [True] * 400, "small": [i < 50 for i in range(400)]})
    scores = {"ref": reference, "cand": candidate}
    config = small_config(policy="confident", correction="holm", on_inconclusive="warn",
                          min_rows=10, bootstrap_resamples=400)
    result = evaluate_gate(compute_metrics(human, scores, masks, (1, 5)), human, scores,
                           masks, config)
    small = {c.dimension: c for c in result.checks if c.slice == "small"}
    for check in small.values():
        assert check.degradation == pytest.approx(12.0)
        assert check.unseen_flips_margin > 0 and check.ci_high >= 12.0 + 9.0
        assert check.ci_low > check.max_drop and check.verdict != PASS
        assert "score more unrated rows" not in check.reason
    assert result.verdict != PASS and result.exit_code == 1
