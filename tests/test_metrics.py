"""Metric definitions, and agreement with an independent sklearn/scipy computation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, cohen_kappa_score, mean_absolute_error

from conftest import DIMENSIONS, columns_config, run_cli
from validator.metrics import (METRICS, adjacent_agreement, exact_agreement, get_metric,
                               mae, quadratic_kappa, round_rating)


def test_round_half_up_after_clipping():
    values = np.array([0.2, 1.49, 1.5, 2.5, 3.5, 4.5, 7.0, -3.0])
    assert round_rating(values, (1, 5)).tolist() == [1, 1, 2, 3, 4, 5, 5, 1]


def test_agreement_definitions_on_a_hand_example():
    human = np.array([1.0, 2.5, 4.0, 5.0])   # rounds to 1, 3, 4, 5
    pred = np.array([1.4, 2.2, 5.6, 3.0])    # rounds to 1, 2, 5, 3
    assert exact_agreement(human, pred, (1, 5)) == 25.0
    assert adjacent_agreement(human, pred, (1, 5)) == 75.0
    assert mae(human, pred, (1, 5)) == pytest.approx((0.4 + 0.3 + 1.0 + 2.0) / 4)


def test_kappa_is_one_for_perfect_agreement_and_degradation_sign():
    human = np.array([1, 2, 3, 4, 5, 3.0])
    assert quadratic_kappa(human, human, (1, 5)) == pytest.approx(1.0)
    assert METRICS["exact_agreement"].degradation(80.0, 75.0) == 5.0
    assert METRICS["mean_absolute_error"].degradation(0.5, 0.7) == pytest.approx(0.2)


def test_unknown_metric_lists_the_valid_names():
    with pytest.raises(KeyError, match="valid: adjacent_agreement, exact_agreement"):
        get_metric("accuracy")


def independent(metric: str, human: np.ndarray, pred: np.ndarray) -> float:
    h_round = np.floor(human + 0.5).astype(int)
    p_clip = np.clip(pred, 1, 5)
    p_round = np.floor(p_clip + 0.5).astype(int)
    if metric == "exact_agreement":
        return accuracy_score(h_round, p_round) * 100
    if metric == "adjacent_agreement":
        return float(np.mean(np.abs(h_round - p_round) <= 1) * 100)
    if metric == "quadratic_kappa":
        return cohen_kappa_score(h_round, p_round, weights="quadratic", labels=[1, 2, 3, 4, 5])
    if metric == "spearman":
        return spearmanr(pred, human).statistic
    return mean_absolute_error(human, p_clip)


def test_summary_metrics_match_sklearn_on_predictions_parquet(tmp_path, scored_rows):
    frame = scored_rows.copy()
    rng = np.random.default_rng(3)
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"] + rng.normal(0, 0.3, len(frame))
    out = tmp_path / "run"
    run_cli("run", "--config", str(columns_config(tmp_path, frame)), "--out", str(out), "--quiet")
    summary = json.loads((out / "summary.json").read_text())
    table = pd.read_parquet(out / "predictions.parquet")
    metrics = pd.DataFrame(summary["metrics"]).set_index(["scorer", "slice", "dimension", "metric"])
    checked = 0
    for scorer in ("ref", "cand"):
        for slice_name in ("all", "headlines", "sms"):
            rows = table[table[f"slice:{slice_name}"]]
            for dimension in [*DIMENSIONS, "_all"]:
                dims = DIMENSIONS if dimension == "_all" else [dimension]
                human = np.concatenate([rows[f"human:{d}"].to_numpy() for d in dims])
                pred = np.concatenate([rows[f"{scorer}:{d}"].to_numpy() for d in dims])
                for metric in METRICS:
                    expected = independent(metric, human, pred)
                    got = metrics.loc[(scorer, slice_name, dimension, metric), "value"]
                    assert got == pytest.approx(expected, abs=1e-9), (scorer, slice_name,
                                                                      dimension, metric)
                    checked += 1
    assert checked == 2 * 3 * 8 * 5


def test_a_metric_registered_once_works_through_the_whole_gate(tmp_path, scored_rows, request):
    """One registration: the metric table, the paired bootstrap, the checks, the operating
    characteristics and every output pick it up."""
    from validator.config import load_config
    from validator.metrics import Metric, register_metric
    from validator.pipeline import run_gate

    metric = register_metric(Metric(
        "within_half_point", True, "percentage points",
        "percent of rows whose clipped prediction is within 0.5 of the human mean",
        row_value=lambda h, p, scale: (np.abs(np.clip(p, *scale) - h) <= 0.5) * 100.0))
    request.addfinalizer(lambda: METRICS.pop(metric.name))
    frame = scored_rows.copy()
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"] + frame.content_type.eq("headline") * 0.6
    gate = {"metric": "within_half_point", "max_drop": 1.0, "min_rows": 50}
    out = tmp_path / "run"
    run_gate(load_config(columns_config(tmp_path, frame, gate=gate)), out)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["gate"]["unit"] == "percentage points"
    assert {c["metric"] for c in summary["checks"]} == {"within_half_point"}
    failed = {c["slice"] for c in summary["checks"] if c["verdict"] == "fail"}
    assert "headlines" in failed and summary["verdict"] == "fail"
    table = pd.read_parquet(out / "predictions.parquet")
    rows = table[table["slice:headlines"]]
    expected = {scorer: np.mean(np.abs(np.clip(rows[f"{scorer}:clarity"], 1, 5)
                                       - rows["human:clarity"]) <= 0.5) * 100
                for scorer in ("ref", "cand")}
    check = next(c for c in summary["checks"]
                 if c["slice"] == "headlines" and c["dimension"] == "clarity")
    assert check["reference"] == pytest.approx(expected["ref"])
    assert check["degradation"] == pytest.approx(expected["ref"] - expected["cand"])
    assert check["ci_low"] <= check["degradation"] <= check["ci_high"]
    assert summary["gate"]["operating_characteristics"]["scenarios"][0]["name"] == "lossless"
    assert "within_half_point" in (out / "report.html").read_text()
    assert "within_half_point" in (out / "summary.md").read_text()


def test_a_metric_needs_exactly_one_resampled_form():
    from validator.metrics import Metric

    with pytest.raises(ValueError, match="exactly one of row_value, resampled"):
        Metric("broken", True, "points", "no form for the bootstrap", aggregate=mae)
