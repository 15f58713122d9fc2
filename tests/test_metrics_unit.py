"""Metric definitions and the metrics table, one function at a time, against
scikit-learn / scipy and hand-computed values (boundaries: half-points, the scale's
ends, constant input, unrated pairs). These tests are also the ones mutation testing
runs against validator/metrics.py (see tests/README.md).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score, confusion_matrix

import validator.metrics as metrics_module
from validator.metrics import (ALL_DIMENSIONS, HUMAN_CEILING, METRICS, Metric,
                               adjacent_agreement, agreement_rows, compute_human_ceiling,
                               compute_metrics, confusion_codes, exact_agreement, get_metric,
                               kappa_from_confusion, mae, pairs, quadratic_kappa, rater_pairs,
                               register_metric, round_rating, spearman)

COLUMNS = ["scorer", "slice", "dimension", "metric", "n", "value"]


def row(table: pd.DataFrame, key: tuple) -> list[float]:
    return table.loc[key, ["n", "value"]].tolist()


def test_round_rating_clips_to_any_scale_then_rounds_half_up():
    values = np.array([-1.0, 0.49, 0.5, 1.5, 2.5, 3.49, 3.5, 9.0])
    assert round_rating(values, (0, 3)).tolist() == [0, 0, 1, 2, 3, 3, 3, 3]
    assert round_rating(values, (1, 5)).tolist() == [1, 1, 1, 2, 3, 3, 4, 5]
    assert round_rating(np.array([4.5, 4.4999]), (2, 10)).tolist() == [5, 4]


def test_exact_and_adjacent_agreement_on_a_hand_example():
    human = np.array([1.0, 2.5, 4.0, 5.0, 3.0])     # rounds to 1, 3, 4, 5, 3
    pred = np.array([0.0, 2.5, 6.0, 2.6, 1.4])      # rounds to 1, 3, 5, 3, 1
    assert exact_agreement(human, pred, (1, 5)) == 40.0
    assert adjacent_agreement(human, pred, (1, 5)) == 60.0
    assert isinstance(exact_agreement(human, pred, (1, 5)), float)
    # on a 0..10 scale nothing is clipped: 6.0 vs 4 is two points apart
    assert adjacent_agreement(human, pred, (0, 10)) == 40.0


def test_confusion_codes_index_the_k_by_k_matrix_from_the_scale_low_end():
    human = np.array([2.0, 3.0, 4.0, 2.0])
    pred = np.array([2.0, 4.0, 2.0, 9.0])
    codes = confusion_codes(human, pred, (2, 4))  # k = 3
    assert codes.tolist() == [0, 5, 6, 2] and codes.dtype == np.int64


def test_kappa_from_confusion_equals_sklearn_for_single_and_stacked_matrices():
    rng = np.random.default_rng(1)
    h = rng.integers(1, 6, 80)
    p = np.clip(h + rng.integers(-2, 3, 80), 1, 5)
    observed = confusion_matrix(h, p, labels=[1, 2, 3, 4, 5]).astype(float)
    expected = cohen_kappa_score(h, p, weights="quadratic")
    assert float(kappa_from_confusion(observed)) == pytest.approx(expected, abs=1e-12)
    stacked = kappa_from_confusion(np.stack([observed, observed.T, np.eye(5)]))
    assert stacked.tolist() == pytest.approx([expected,
                                              cohen_kappa_score(p, h, weights="quadratic"),
                                              1.0])


@pytest.mark.parametrize("scale", [(1, 5), (0, 3)])
def test_quadratic_kappa_equals_sklearn_on_rounded_values(scale):
    rng = np.random.default_rng(2)
    human = np.round(rng.uniform(*scale, 70) * 2) / 2
    pred = human + rng.normal(0, 1.0, 70)
    labels = list(range(scale[0], scale[1] + 1))
    expected = cohen_kappa_score(round_rating(human, scale).astype(int),
                                 round_rating(pred, scale).astype(int),
                                 weights="quadratic", labels=labels)
    assert quadratic_kappa(human, pred, scale) == pytest.approx(expected, abs=1e-12)
    assert isinstance(quadratic_kappa(human, pred, scale), float)


def test_quadratic_kappa_hand_example_and_constant_input():
    # 2x2 on a 1..2 scale: observed [[1, 1], [0, 2]]
    assert quadratic_kappa(np.array([1.0, 1, 2, 2]), np.array([1.0, 2, 2, 2]), (1, 2)) == \
        pytest.approx(0.5)
    assert math.isnan(quadratic_kappa(np.full(3, 2.0), np.full(3, 2.0), (1, 5)))


def test_spearman_is_scipy_on_raw_values_and_nan_when_undefined():
    human = np.array([1.0, 2.0, 2.0, 4.0, 5.0])
    pred = np.array([0.5, 3.0, 2.5, 7.0, 4.0])   # unclipped values are ranked
    assert spearman(human, pred, (1, 5)) == pytest.approx(spearmanr(pred, human).statistic)
    assert spearman(human, np.array([9.0, 8, 7, 6, 5]), (1, 5)) == pytest.approx(
        spearmanr([9, 8, 7, 6, 5], human).statistic)
    assert math.isnan(spearman(np.array([3.0]), np.array([2.0]), (1, 5)))
    assert math.isnan(spearman(np.full(4, 3.0), np.arange(4.0), (1, 5)))
    assert math.isnan(spearman(np.arange(4.0), np.full(4, 3.0), (1, 5)))
    assert spearman(np.array([1.0, 2.0]), np.array([1.0, 3.0]), (1, 5)) == pytest.approx(1.0)
    assert spearman(np.array([1.0, 3.0]), np.array([2.0, 1.0]), (1, 5)) == pytest.approx(-1.0)


@pytest.mark.filterwarnings("error")
def test_undefined_metrics_are_nan_without_warnings():
    constant, varying = np.full(4, 3.0), np.array([1.0, 2.0, 4.0, 5.0])
    assert math.isnan(spearman(constant, varying, (1, 5)))
    assert math.isnan(spearman(varying, constant, (1, 5)))
    assert math.isnan(quadratic_kappa(constant, constant, (1, 5)))
    assert math.isnan(float(kappa_from_confusion(np.diag([0.0, 4.0, 0.0]))))


def test_mae_clips_predictions_but_not_the_human_mean():
    human = np.array([1.0, 4.5, 3.0])
    pred = np.array([-2.0, 7.0, 3.5])           # clipped to 1, 5, 3.5
    assert mae(human, pred, (1, 5)) == pytest.approx((0 + 0.5 + 0.5) / 3)
    assert mae(human, pred, (0, 10)) == pytest.approx((1 + 2.5 + 0.5) / 3)  # -2 -> 0


def test_metric_registry_directions_units_and_degradation_sign():
    assert [name for name, m in METRICS.items() if not m.higher_is_better] == [
        "mean_absolute_error"]
    assert METRICS["exact_agreement"].degradation(80.0, 75.0) == 5.0
    assert METRICS["spearman"].degradation(0.5, 0.75) == -0.25
    assert METRICS["mean_absolute_error"].degradation(0.5, 0.75) == 0.25
    assert METRICS["mean_absolute_error"].degradation(0.75, 0.5) == -0.25
    assert METRICS["exact_agreement"].unit == "percentage points"
    assert get_metric("quadratic_kappa") is METRICS["quadratic_kappa"]
    with pytest.raises(KeyError) as info:
        get_metric("accuracy")
    assert info.value.args[0] == ("unknown metric 'accuracy' (valid: adjacent_agreement, "
                                  "exact_agreement, mean_absolute_error, quadratic_kappa, "
                                  "spearman)")


# -- Metric objects and the registry -----------------------------------------------------

def rows_of(h, p, scale):
    return np.abs(p - h)


def test_a_metric_needs_exactly_one_resample_form_and_an_aggregate_when_resampled():
    with pytest.raises(ValueError, match=r"^metric 'm': give exactly one of row_value, "
                                         r"resampled$"):
        Metric("m", True, "u", "d", aggregate=mae)
    with pytest.raises(ValueError, match=r"^metric 'm': give exactly one of row_value, "
                                         r"resampled$"):
        Metric("m", True, "u", "d", aggregate=mae, row_value=rows_of,
               resampled=lambda W, h, p, s: W.sum(axis=1))
    with pytest.raises(ValueError, match=r"^metric 'm': a resampled metric needs an "
                                         r"aggregate$"):
        Metric("m", True, "u", "d", resampled=lambda W, h, p, s: W.sum(axis=1))
    row_only = Metric("m", False, "u", "d", row_value=rows_of)
    assert row_only.aggregate is None and row_only.flip_tolerance is None


@pytest.mark.parametrize("bad", [0.0, -0.1, math.nan, math.inf])
def test_a_metric_default_max_drop_must_be_finite_and_positive(bad):
    with pytest.raises(ValueError, match=r"^metric 'm': max_drop must be a finite number "
                                         r"> 0$"):
        Metric("m", True, "u", "d", row_value=rows_of, max_drop=bad)
    assert Metric("m", True, "u", "d", row_value=rows_of, max_drop=1e-9).max_drop == 1e-9


def test_metric_declarations_units_ranges_defaults_and_guards():
    """docs/thresholds.md's table, as declared."""
    table = {name: (m.unit, m.range_on((1, 5)), m.range_on((0, 10)), m.max_drop, m.guard)
             for name, m in METRICS.items()}
    assert table == {
        "exact_agreement": ("percentage points", (0, 100), (0, 100), 1.0, None),
        "adjacent_agreement": ("percentage points", (0, 100), (0, 100), 1.0,
                               "mean_absolute_error"),
        "quadratic_kappa": ("kappa", (-1, 1), (-1, 1), 0.02, "mean_absolute_error"),
        "spearman": ("correlation", (-1, 1), (-1, 1), 0.02, "mean_absolute_error"),
        "mean_absolute_error": ("rating points", (0, 4), (0, 10), 0.05, None)}
    assert all(isinstance(v, float) for m in METRICS.values() for v in m.range_on((1, 5)))
    assert "shift" in METRICS["spearman"].blind_to and "shift" in \
        METRICS["quadratic_kappa"].blind_to
    plain = Metric("m", True, "u", "d", row_value=rows_of)
    assert (plain.range, plain.max_drop, plain.blind_to, plain.guard) == (
        (0.0, 100.0), 1.0, "", None)


def test_metric_value_is_the_aggregate_or_the_mean_of_row_values_and_nan_when_empty():
    h, p = np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 2.0])
    row_only = Metric("m", False, "u", "d", row_value=rows_of)
    assert row_only.value(h, p, (1, 5)) == pytest.approx(2.5 / 3)
    with_aggregate = Metric("m", False, "u", "d", aggregate=lambda h, p, s: 7,
                            row_value=rows_of)
    assert with_aggregate.value(h, p, (1, 5)) == 7.0
    assert isinstance(with_aggregate.value(h, p, (1, 5)), float)
    assert isinstance(row_only.value(h, p, (1, 5)), float)
    for metric in (row_only, with_aggregate, *METRICS.values()):
        assert math.isnan(metric.value(np.array([]), np.array([]), (1, 5)))


@pytest.mark.filterwarnings("error")
def test_metric_weighted_is_the_metric_of_each_materialised_resample():
    rng = np.random.default_rng(8)
    h = np.round(rng.uniform(1, 5, 30) * 2) / 2
    p = h + rng.normal(0, 0.8, 30)
    draws = rng.integers(0, 30, (4, 30))
    W = np.stack([np.bincount(r, minlength=30) for r in draws]).astype(float)
    for name, metric in METRICS.items():
        got = metric.weighted(W, h, p, (1, 5))
        for b, rows in enumerate(draws):
            assert got[b] == pytest.approx(metric.value(h[rows], p[rows], (1, 5)),
                                           abs=1e-12), name
    nothing = METRICS["exact_agreement"].weighted(np.zeros((1, 30)), h, p, (1, 5))
    assert math.isnan(nothing[0])  # a resample without rows: NaN, silently


def test_agreement_rows_are_100_within_the_tolerance():
    h, p = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.4, 3.0, 5.0, 9.0])
    assert agreement_rows(0)(h, p, (1, 5)).tolist() == [100.0, 0.0, 0.0, 0.0]
    assert agreement_rows(1)(h, p, (1, 5)).tolist() == [100.0, 100.0, 0.0, 100.0]
    assert METRICS["exact_agreement"].flip_tolerance == 0
    assert METRICS["adjacent_agreement"].flip_tolerance == 1
    assert METRICS["quadratic_kappa"].flip_tolerance is None
    assert METRICS["mean_absolute_error"].row_value(h, p, (1, 5)).tolist() == pytest.approx(
        [0.4, 1.0, 2.0, 1.0])


def test_register_metric_adds_it_to_the_registry_and_the_table(monkeypatch):
    monkeypatch.setattr(metrics_module, "METRICS", dict(METRICS))
    extra = Metric("within_two", True, "percentage points", "within two points",
                   row_value=agreement_rows(2), flip_tolerance=2)
    assert register_metric(extra) is extra
    assert metrics_module.METRICS["within_two"] is extra
    assert get_metric("within_two") is extra
    assert list(metrics_module.METRICS)[-1] == "within_two"
    assert "within_two" not in METRICS  # the module's registry was replaced for this test
    table = compute_metrics(HUMAN, {"s": PRED}, pd.DataFrame({"all": [True] * 5}), (1, 5))
    assert set(table.metric) == set(METRICS) | {"within_two"}


HUMAN = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0, 5.0],
                      "b": [np.nan, 3.0, np.nan, 2.0, 1.0]})
PRED = np.array([[1.2, 9.0], [2.6, 3.1], [3.0, 3.0], [4.0, 2.0], [4.4, 1.6]])
MASK = np.array([True, True, True, False, True])


def test_pairs_select_slice_rows_and_drop_unrated_pairs():
    h, p, n = pairs(HUMAN, PRED, MASK, "a")
    assert h.tolist() == [1.0, 2.0, 5.0] and p.tolist() == [1.2, 2.6, 4.4] and n == 3
    h, p, n = pairs(HUMAN, PRED, MASK, "b")
    assert h.tolist() == [3.0, 1.0] and p.tolist() == [3.1, 1.6] and n == 2
    h, p, n = pairs(HUMAN, PRED, MASK, ALL_DIMENSIONS)
    assert sorted(h.tolist()) == [1.0, 1.0, 2.0, 3.0, 5.0]
    assert sorted(p.tolist()) == [1.2, 1.6, 2.6, 3.1, 4.4]
    assert n == 3  # rows 0, 1 and 4 have a rating; row 2 has none


def test_compute_metrics_table_every_scorer_slice_dimension_and_metric():
    masks = pd.DataFrame({"all": [True] * 5, "some": MASK, "none": [False] * 5})
    frame = compute_metrics(HUMAN, {"ref": PRED, "cand": PRED + 1}, masks, (1, 5))
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 2 * 3 * 3 * len(METRICS)
    table = frame.set_index(["scorer", "slice", "dimension", "metric"])
    # slice "some", dimension a: human 1, 2, 5; ref rounds to 1, 3, 4; cand to 2, 4, 5
    assert row(table, ("ref", "some", "a", "exact_agreement")) == pytest.approx([3, 100 / 3])
    assert row(table, ("ref", "some", "a", "adjacent_agreement")) == pytest.approx([3, 100])
    assert row(table, ("cand", "some", "a", "adjacent_agreement")) == pytest.approx([3, 200 / 3])
    assert table.loc[("ref", "all", "_all", "mean_absolute_error"), "value"] == \
        pytest.approx((0.2 + 0.6 + 0 + 0.6 + 0.1 + 0 + 0.6) / 7)
    assert table.loc[("ref", "all", "_all", "exact_agreement"), "n"] == 4
    empty = table.loc[("ref", "none", "a", "spearman")]
    assert empty["n"] == 0 and math.isnan(empty["value"])
    assert HUMAN_CEILING not in set(frame.scorer)


RATERS = {"a": np.array([[1.0, 1.0, 2.0], [2.0, 3.0, np.nan], [4.0, 4.0, 4.0],
                         [np.nan, 5.0, 5.0], [3.0, 1.0, 3.0]]),
          "b": np.array([[2.0, 2.0], [1.0, 2.0], [3.0, 3.0], [4.0, np.nan], [5.0, 5.0]])}


def test_rater_pairs_cover_every_pair_of_raters_where_both_rated():
    first, second = rater_pairs(RATERS, np.ones(5, bool), "a")
    # pairs (r1, r2), (r1, r3), (r2, r3) over rows where both rated
    assert first.tolist() == [1, 2, 4, 3, 1, 4, 3, 1, 4, 5, 1]
    assert second.tolist() == [1, 3, 4, 1, 2, 4, 3, 2, 4, 5, 3]
    first, second = rater_pairs(RATERS, np.array([True, True, False, False, False]), "b")
    assert (first.tolist(), second.tolist()) == ([2, 1], [2, 2])
    first, second = rater_pairs(RATERS, np.ones(5, bool), ALL_DIMENSIONS)
    assert len(first) == 11 + 4
    first, second = rater_pairs({"a": np.ones((3, 1))}, np.ones(3, bool), "a")
    assert first.tolist() == [] and second.tolist() == []


def test_human_ceiling_is_rater_against_rater_agreement():
    masks = pd.DataFrame({"all": [True] * 5, "top": [True, True, False, False, False]})
    frame = compute_human_ceiling(RATERS, masks, (1, 5))
    assert list(frame.columns) == COLUMNS and set(frame.scorer) == {HUMAN_CEILING}
    assert len(frame) == 2 * 3 * len(METRICS)
    table = frame.set_index(["slice", "dimension", "metric"])
    assert row(table, ("all", "a", "exact_agreement")) == pytest.approx([11, 100 * 6 / 11])
    assert row(table, ("top", "b", "exact_agreement")) == pytest.approx([2, 50.0])
    assert row(table, ("all", "_all", "exact_agreement")) == pytest.approx([15, 100 * 9 / 15])
    with_raters = compute_metrics(HUMAN, {"ref": PRED}, masks, (1, 5), RATERS)
    assert list(with_raters.index) == list(range(len(with_raters)))
    assert (with_raters.scorer == HUMAN_CEILING).sum() == len(frame)


def test_human_ceiling_with_one_rater_is_an_empty_table_and_empty_slices_are_nan():
    single = {"a": np.ones((5, 1)), "b": np.ones((5, 1))}
    frame = compute_human_ceiling(single, pd.DataFrame({"all": [True] * 5}), (1, 5))
    assert frame.empty and list(frame.columns) == COLUMNS
    mixed = {"a": RATERS["a"], "b": np.ones((5, 1))}
    frame = compute_human_ceiling(mixed, pd.DataFrame({"none": [False] * 5}), (1, 5))
    table = frame.set_index(["dimension", "metric"])
    assert table.loc[("a", "exact_agreement"), "n"] == 0
    assert math.isnan(table.loc[("a", "exact_agreement"), "value"])
    assert table.loc[("b", "mean_absolute_error"), "n"] == 0
