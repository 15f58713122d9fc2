"""The gate with an unrated pool, end to end with the columns backend, and the
per-candidate multiple-comparison family."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import DIMENSIONS, columns_config, run_cli
from validator.config import Config
from validator.judge.gate import build_checks
from validator.metrics import compute_metrics

RATERS = [f"{d}_r{k}" for d in DIMENSIONS for k in (1, 2)]


def candidate_flipping(frame, share, seed):
    """The candidate moves the reference's rounded rating by one on ``share`` of rows."""
    rng = np.random.default_rng(seed)
    for d in DIMENSIONS:
        ref = frame[f"{d}_ref"].to_numpy()
        step = np.where(np.floor(np.clip(ref, 1, 5) + 0.5) >= 3, -1.0, 1.0)
        frame[f"{d}_cand"] = np.where(rng.random(len(frame)) < share, ref + step, ref)
    return frame


def test_a_run_without_ratings_is_valid_and_every_check_inconclusive(tmp_path, scored_rows):
    frame = candidate_flipping(scored_rows.copy(), 0.05, 1)
    frame[RATERS] = np.nan
    out = tmp_path / "run"
    result = run_cli("run", "--config", str(columns_config(tmp_path, frame)),
                     "--out", str(out), "--quiet")
    assert result.returncode == 1, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "inconclusive"
    assert {c["verdict"] for c in summary["checks"]} == {"inconclusive"}
    assert summary["design"]["rated_rows"] == 0
    assert summary["design"]["pool_rows"] == len(frame)
    every = next(s for s in summary["slices"] if s["name"] == "all")
    assert (every["rated_rows"], every["pool_rows"]) == (0, len(frame))
    # the flip rates are measured on the pool, and the power statement needs no rating
    pooled = [c for c in summary["checks"] if c["slice"] == "all" and c["dimension"] == "_all"]
    assert 0.02 < pooled[0]["flip_rate"] < 0.08
    assert pooled[0]["ratings_needed_targeted"] < pooled[0]["ratings_needed_uniform"]
    assert "power: all: 0 rated" in result.stdout
    table = pd.read_parquet(out / "predictions.parquet")
    assert not table.rated.any() and table["human:clarity"].isna().all()


def test_a_pool_beside_rated_rows_is_scored_and_feeds_the_design(tmp_path, scored_rows):
    frame = candidate_flipping(scored_rows.copy(), 0.1, 2)
    pool = np.random.default_rng(3).random(len(frame)) < 0.5
    frame.loc[pool, RATERS] = np.nan
    out = tmp_path / "run"
    result = run_cli("run", "--config", str(columns_config(tmp_path, frame)),
                     "--out", str(out), "--quiet")
    assert result.returncode in (0, 1), result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["design"]["method"].startswith("two-phase")
    assert summary["design"]["pool_rows"] == int(pool.sum())
    assert summary["design"]["rated_rows"] == int((~pool).sum())
    table = pd.read_parquet(out / "predictions.parquet")
    assert table.rated.tolist() == (~pool).tolist()
    assert table.inclusion_probability.unique().tolist() == [pytest.approx((~pool).mean())]
    assert set(table.stratum) == {"uniform"}
    assert table.loc[~table.rated, "human:clarity"].isna().all()
    clarity = next(c for c in summary["checks"]
                   if c["slice"] == "all" and c["dimension"] == "clarity")
    assert clarity["n"] == int((~pool).sum())          # only rated rows count as rated
    assert clarity["phase1_sd"] > 0 and clarity["bootstrap_sd"] > clarity["phase1_sd"]
    assert "Power before work" in (out / "summary.md").read_text()
    assert 'id="power"' in (out / "report.html").read_text()


def test_expectations_still_check_ratings_on_rated_rows(tmp_path, scored_rows):
    frame = candidate_flipping(scored_rows.copy(), 0.1, 2)
    frame.loc[frame.index[:10], RATERS] = np.nan
    frame.loc[frame.index[20], "clarity_r1"] = 9
    result = run_cli("run", "--config", str(columns_config(tmp_path, frame)),
                     "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 2 and "clarity_r1" in result.stderr


# -- per-candidate error control -------------------------------------------------------------

def two_candidate_run(candidates):
    rng = np.random.default_rng(8)
    rows = 300
    human = pd.DataFrame({"a": rng.integers(1, 6, rows), "b": rng.integers(1, 6, rows)},
                         dtype=float)
    ref = human.to_numpy() + rng.normal(0, 0.4, (rows, 2))
    scores = {"ref": ref,
              "small": np.where(rng.random((rows, 2)) < 0.06, ref + 1, ref),
              "big": np.where(rng.random((rows, 2)) < 0.4, ref + 1.1, ref)}
    masks = pd.DataFrame({"all": np.ones(rows, dtype=bool),
                          "half": np.arange(rows) < rows // 2})
    config = Config.model_validate({
        "sample": {"path": "unused.csv"},
        "rubric": {"scale": [1, 5], "dimensions": {"a": "a", "b": "b"}},
        "reference": {"name": "ref", "backend": "columns", "columns": "{dimension}"},
        "candidates": [{"name": c, "backend": "columns", "columns": "{dimension}"}
                       for c in candidates],
        "gate": {"metric": "exact_agreement", "max_drop": 3.0, "min_rows": 20,
                 "bootstrap_resamples": 200, "correction": "holm"},
        "seed": 3})
    chosen = {k: v for k, v in scores.items() if k == "ref" or k in candidates}
    metrics = compute_metrics(human, chosen, masks, (1, 5))
    checks, _ = build_checks(metrics, human, chosen, masks, config)
    return {(c.candidate, c.slice, c.dimension): c for c in checks}


def test_adding_a_candidate_changes_no_other_candidates_verdicts():
    alone = two_candidate_run(["small"])
    together = two_candidate_run(["small", "big"])
    assert any(c.verdict == "fail" for k, c in together.items() if k[0] == "big")
    for key, check in alone.items():
        other = together[key]
        assert (other.verdict, other.reason) == (check.verdict, check.reason)
        assert other.p_value_max_drop_adjusted == check.p_value_max_drop_adjusted
        assert other.rows_needed == check.rows_needed


def test_the_design_path_is_taken_only_with_a_pool_or_unequal_weights():
    from validator.judge.gate import needs_design
    rated = np.array([[1.0, 2.0], [3.0, np.nan], [2.0, 2.0]])
    assert not needs_design(rated, np.ones(3))                  # partial rows are rated
    assert needs_design(rated, np.array([1.0, 2.0, 1.0]))       # a plan's unequal weights
    pool = rated.copy()
    pool[1] = np.nan
    assert needs_design(pool, np.array([1.0, 0.0, 1.0]))        # an unrated pool row
    assert not needs_design(np.empty((0, 2)), np.ones(0))


def run_summary(tmp_path, frame, **gate) -> tuple[int, dict]:
    config = columns_config(tmp_path, frame, **({"gate": gate} if gate else {}))
    out = tmp_path / "run"
    result = run_cli("run", "--config", str(config), "--out", str(out), "--quiet")
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads((out / "summary.json").read_text())


def test_rated_rows_unlike_the_pool_decide_nothing(tmp_path, scored_rows):
    """A hostile trial's wrong pass: the candidate flips only rated rows (all worse),
    the unrated pool never flips, so the pool's 0% flip share diluted a large loss. The
    rated rows are then no uniform subsample: every check is inconclusive, saying so."""
    frame = scored_rows.copy()
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"]
    pool = np.random.default_rng(4).random(len(frame)) < 0.8
    frame.loc[pool, RATERS] = np.nan
    rated_rows = np.flatnonzero(~pool)
    worse = rated_rows[: len(rated_rows) // 3]
    for d in DIMENSIONS:
        human = frame[[f"{d}_r1", f"{d}_r2"]].mean(axis=1).to_numpy()
        frame.loc[frame.index[worse], f"{d}_ref"] = human[worse]
        frame.loc[frame.index[worse], f"{d}_cand"] = np.where(human[worse] >= 3, 1.0, 5.0)
    code, summary = run_summary(tmp_path, frame)
    assert code == 1
    everything = [c for c in summary["checks"] if c["slice"] == "all"]
    assert {c["verdict"] for c in everything} == {"inconclusive"}
    assert all("no uniform subsample" in c["reason"] for c in everything)


def test_a_handful_of_rated_flips_cannot_speak_for_the_pool(tmp_path, scored_rows):
    """Flips everywhere, but only a few of the flipped rows rated: inconclusive."""
    frame = candidate_flipping(scored_rows.copy(), 0.3, 5)
    flipped = (frame[[f"{d}_cand" for d in DIMENSIONS]].to_numpy()
               != frame[[f"{d}_ref" for d in DIMENSIONS]].to_numpy()).any(axis=1)
    rated = np.zeros(len(frame), dtype=bool)
    rated[np.flatnonzero(~flipped)[:200]] = True
    rated[np.flatnonzero(flipped)[:3]] = True
    frame.loc[~rated, RATERS] = np.nan
    code, summary = run_summary(tmp_path, frame)
    assert code == 1
    reasons = [c["reason"] for c in summary["checks"] if c["verdict"] == "inconclusive"]
    assert any("flipped pairs are rated, fewer than 10" in r or "no uniform subsample" in r
               for r in reasons)
    assert not any(c["verdict"] == "pass" for c in summary["checks"]
                   if c["slice"] == "all" and c["flip_rate"])
