"""validator recommend on a columns-backend run: a candidate that loses only on short
copy gets short copy routed to the reference, confirmed on the other half of the rows;
the plan it writes passes when gated; a plan that fails confirmation is never a pass."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import DIMENSIONS, ROOT, columns_config, reseal, run_cli
from validator.after.recommend import options_table, recommend, selection_half, write_plan
from validator.routing import Router


@pytest.fixture(scope="module")
def short_copy_run(tmp_path_factory, scored_rows):
    """The candidate equals the reference except on copy of six words or fewer."""
    tmp = tmp_path_factory.mktemp("recommend")
    frame = scored_rows.copy()
    short = frame.text.str.split().str.len() <= 6
    rng = np.random.default_rng(11)
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"] + np.where(short, rng.normal(0, 1.2, len(frame)), 0)
    config = columns_config(tmp, frame, slices=[str(ROOT / "slices")],
                            gate={"min_rows": 30, "on_inconclusive": "warn",
                                  "bootstrap_resamples": 200})
    result = run_cli("run", "--config", str(config), "--out", str(tmp / "run"), "--quiet")
    assert result.returncode == 1, result.stderr
    return tmp, config


def test_recommend_routes_short_copy_and_the_plan_passes_when_gated(short_copy_run):
    tmp, config = short_copy_run
    result = run_cli("recommend", str(tmp / "run"), "--out", str(tmp / "plan" / "routing.yaml"),
                     "--route-small")
    assert result.returncode == 0, result.stderr
    assert ("| cand | non_english -> ref, short_copy -> ref | 20.6% | pass | pass (0 failed"
            in result.stdout)
    assert "recommended: cand with fallback on 20.6% of traffic" in result.stdout
    assert "too small to decide (< min_rows): non_english\n" in result.stdout
    router = Router.from_file(tmp / "plan" / "routing.yaml")
    assert [(r.slice, r.to) for r in router.rules] == [("non_english", "ref"),
                                                       ("short_copy", "ref"), (None, "cand")]
    table = pd.read_parquet(tmp / "run" / "predictions.parquet")
    sample = pd.read_parquet(config.parent / "sample.parquet").set_index("id")
    rows = sample.loc[table["id"]].reset_index()
    fallback = (rows["text"].str.split().str.len() <= 6) | (rows["language"] != "en")
    assert (router.route_rows(rows) == np.where(fallback, "ref", "cand")).all()
    assert "confirmed on the other half" in (tmp / "plan" / "routing.options.md").read_text()
    # gate the written snippet beside the candidate: the routed one has no failing check
    snippet = yaml.safe_load((tmp / "plan" / "routing.candidate.yaml").read_text())
    raw = yaml.safe_load(config.read_text())
    raw["candidates"] += snippet["candidates"]
    gated = tmp / "gated.yaml"
    gated.write_text(yaml.safe_dump(raw))
    run = run_cli("run", "--config", str(gated), "--out", str(tmp / "gated"), "--quiet")
    assert run.returncode == 1, run.stderr  # the candidate alone still fails
    checks = json.loads((tmp / "gated" / "summary.json").read_text())["checks"]
    routed = [c for c in checks if c["candidate"] == "cand-with-fallback"]
    assert len(routed) == len(checks) // 2
    assert not [c for c in routed if c["verdict"] == "fail"]


def test_no_plan_within_the_limit_exits_1(short_copy_run, tmp_path):
    tmp, _ = short_copy_run
    result = run_cli("recommend", str(tmp / "run"), "--max-fallback-share", "0.05",
                     "--out", str(tmp_path / "routing.yaml"))
    assert result.returncode == 1, result.stderr
    assert "| cand | (none) | - | no plan within 5% fallback | not run |" in result.stdout
    assert "no plan passes within 5% fallback traffic" in result.stdout
    assert not (tmp_path / "routing.yaml").exists()


def test_a_plan_that_fails_confirmation_is_reported_as_failed(short_copy_run, tmp_path):
    """The candidate degrades only on rows of the confirmation half: the selection half
    needs no fallback, and the confirmation half shows that this is wrong."""
    tmp, _ = short_copy_run
    run = tmp_path / "run"
    shutil.copytree(tmp / "run", run)
    table = pd.read_parquet(run / "predictions.parquet")
    confirmation = ~selection_half(table["id"])
    rng = np.random.default_rng(2)
    for d in DIMENSIONS:
        table[f"cand:{d}"] = table[f"ref:{d}"] + np.where(
            confirmation, rng.normal(0, 1.5, len(table)), 0)
    table.to_parquet(run / "predictions.parquet", index=False)
    _, options, best = recommend(reseal(run), 0.4)
    assert best is None
    assert options[0].selection == "pass" and options[0].routes == []
    assert options[0].confirmation == "fail" and options[0].confirmation_counts["fail"] > 0
    assert "| cand | (none) | 0.0% | pass | fail (" in options_table(options, 0.4)


def test_a_better_candidate_takes_the_slice_instead_of_the_reference(short_copy_run, tmp_path):
    """``twin`` loses everywhere except on short copy, where ``cand`` loses: cand's
    cheapest plan sends short copy to twin, with no fallback to the reference."""
    tmp, config = short_copy_run
    frame = pd.read_parquet(config.parent / "sample.parquet")
    short = frame.text.str.split().str.len() <= 6
    rng = np.random.default_rng(5)
    for d in DIMENSIONS:
        frame[f"{d}_twin"] = frame[f"{d}_ref"] + np.where(short, 0, rng.normal(0, 1.2, len(frame)))
    raw = yaml.safe_load(config.read_text())
    raw["candidates"].append({"name": "twin", "backend": "columns", "columns": "{dimension}_twin"})
    two = columns_config(tmp_path, frame, **{k: raw[k] for k in ("slices", "gate", "candidates")})
    run_cli("run", "--config", str(two), "--out", str(tmp_path / "run"), "--quiet")
    run, options, best = recommend(tmp_path / "run", 0.4)
    assert best is not None and best.candidate == "cand"
    assert [(r.slice, r.to) for r in best.routes] == [("short_copy", "twin")]
    assert best.share == 0.0 and best.traffic["twin"] == pytest.approx(short.mean(), abs=0.02)
    assert best.confirmation == "pass"
    written = write_plan(tmp_path / "plan" / "routing.yaml", run, options, best, 0.4)
    router = Router.from_file(written[0])
    assert (router.route_rows(frame) == np.where(short, "twin", "cand")).all()


def test_halves_are_stable_and_balanced():
    ids = pd.Series([f"ad-{i:05d}" for i in range(4000)])
    first = selection_half(ids)
    assert (first == selection_half(ids)).all()
    assert 0.45 < first.mean() < 0.55


@pytest.mark.parametrize("args, message", [
    (["recommend", "nowhere"], "nowhere/summary.json: not found"),
    (["recommend", ".", "--max-fallback-share", "1.5"], "--max-fallback-share: must be in"),
])
def test_bad_recommend_input_exits_2(args, message, tmp_path):
    if args[1] == ".":
        args = [args[0], str(tmp_path), *args[2:]]
        (tmp_path / "summary.json").write_text("{}")
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
