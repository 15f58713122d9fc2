"""Thresholds in the metric's unit (issue 22.1) and location guards for metrics blind to
a shift (issue 22.2): per-metric default max_drop, wide thresholds refused at plan time,
the rating scale bounded before anything is sized by it, and the guard's checks.

Gate runs use the columns backend in process (fast).
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import DIMENSIONS, columns_config
from test_fail_closed import GATE, gate_run, same_as_reference
from validator.cli import app
from validator.config import DEFAULT_CONFIG, GateConfig, parse_config
from validator.errors import ConfigError
from validator.metrics import METRICS
from validator.plan import WIDE_SHARE, check_config

DEFAULT_MAX_DROPS = {"exact_agreement": 1.0, "adjacent_agreement": 1.0,
                     "quadratic_kappa": 0.02, "spearman": 0.02, "mean_absolute_error": 0.05}


def config_with(gate: dict, scale=(1, 5)):
    rubric = {**DEFAULT_CONFIG["rubric"], "scale": list(scale)}
    return parse_config({**DEFAULT_CONFIG, "rubric": rubric, "gate": gate}, "c.yaml",
                        Path("."))


# -- declarations --------------------------------------------------------------------------

def test_every_metric_declares_its_unit_range_default_and_guard():
    assert {name: m.max_drop for name, m in METRICS.items()} == DEFAULT_MAX_DROPS
    assert METRICS["exact_agreement"].range_on((1, 5)) == (0.0, 100.0)
    assert METRICS["quadratic_kappa"].range_on((1, 5)) == (-1.0, 1.0)
    assert METRICS["spearman"].range_on((0, 10)) == (-1.0, 1.0)
    assert METRICS["mean_absolute_error"].range_on((1, 5)) == (0.0, 4.0)
    assert METRICS["mean_absolute_error"].range_on((0, 10)) == (0.0, 10.0)
    assert {n for n, m in METRICS.items() if m.guard} == {"spearman", "quadratic_kappa",
                                                           "adjacent_agreement"}
    assert {m.guard for m in METRICS.values()} == {None, "mean_absolute_error"}
    assert all(m.blind_to for m in METRICS.values())


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_max_drop_defaults_to_the_metrics_own(metric):
    assert GateConfig(metric=metric).max_drop == DEFAULT_MAX_DROPS[metric]
    assert config_with({"metric": metric}).gate.max_drop == DEFAULT_MAX_DROPS[metric]
    assert GateConfig(metric=metric, max_drop=0.01).max_drop == 0.01  # given: kept


def test_an_old_config_without_max_drop_behaves_as_before():
    assert GateConfig().max_drop == 1.0
    assert config_with({"metric": "exact_agreement"}).gate.max_drop == 1.0
    check_config(config_with({"metric": "exact_agreement", "max_drop": 25}))  # 25%: allowed


# -- wide thresholds: refused at plan time, naming the key, range and a sane value -------

@pytest.mark.parametrize("gate, key, message", [
    ({"metric": "spearman", "max_drop": 1.0}, "gate.max_drop",
     "1 is wider than 25% of spearman's range [-1, 1] (correlation); a sane value is e.g. "
     "0.02 (its default)"),
    ({"metric": "quadratic_kappa", "max_drop": 0.51}, "gate.max_drop",
     "0.51 is wider than 25% of quadratic_kappa's range [-1, 1] (kappa)"),
    ({"metric": "exact_agreement", "overrides": [{"slice": "headlines", "max_drop": 2},
                                                {"dimension": "clarity", "max_drop": 30}]},
     "gate.overrides[1].max_drop",
     "30 is wider than 25% of exact_agreement's range [0, 100] (percentage points); a sane "
     "value is e.g. 1 (its default)"),
    ({"metric": "mean_absolute_error", "max_drop": 1.5}, "gate.max_drop",
     "1.5 is wider than 25% of mean_absolute_error's range [0, 4] (rating points)"),
    ({"metric": "spearman", "guard_max_drop": 2}, "gate.guard_max_drop",
     "2 is wider than 25% of mean_absolute_error's range [0, 4] (rating points)"),
])
def test_a_threshold_wider_than_a_quarter_of_the_range_is_refused(gate, key, message):
    with pytest.raises(ConfigError) as info:
        check_config(config_with(gate))
    assert str(info.value).startswith(f"c.yaml: {key}: {message}")
    assert str(info.value).endswith("set gate.allow_wide_max_drop: true to keep it")
    check_config(config_with({**gate, "allow_wide_max_drop": True}))  # said explicitly


def test_the_wide_share_is_inclusive_and_scales_with_the_rating_scale():
    assert WIDE_SHARE == 0.25
    check_config(config_with({"metric": "spearman", "max_drop": 0.5}))
    check_config(config_with({"metric": "mean_absolute_error", "max_drop": 2.5}, (0, 10)))
    with pytest.raises(ConfigError, match=r"range \[0, 10\]"):
        check_config(config_with({"metric": "mean_absolute_error", "max_drop": 2.51}, (0, 10)))


def test_a_wide_max_drop_exits_2_before_scoring(tmp_path, scored_rows):
    path = columns_config(tmp_path, scored_rows, gate={"metric": "spearman", "max_drop": 1.0})
    result = CliRunner().invoke(app, ["run", "--config", str(path), "--out",
                                      str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert f"{path}: gate.max_drop: 1 is wider than 25% of spearman's range" in result.output
    assert not (tmp_path / "run" / "summary.json").exists()


# -- the rating scale is bounded before anything is sized by it --------------------------

@pytest.mark.parametrize("scale", [(1, 100_000), (0, 101), (-(10 ** 12), 10 ** 12)])
def test_a_scale_wider_than_100_points_is_refused_at_once(scale):
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        config_with({}, scale)
    assert time.perf_counter() - started < 2  # was: "out of memory" after scoring
    assert str(info.value).startswith("c.yaml: rubric.scale: a rating scale at most 100 "
                                      "points wide is supported")
    assert config_with({}, (0, 100)).rubric.scale == (0, 100)


def test_a_huge_scale_in_a_run_exits_2_naming_rubric_scale(tmp_path, scored_rows):
    path = columns_config(tmp_path, scored_rows)
    raw = yaml.safe_load(path.read_text())
    raw["rubric"]["scale"] = [1, 100000]
    path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["run", "--config", str(path), "--out",
                                      str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2 and "rubric.scale: a rating scale at most 100" in \
        result.output, result.output


# -- location guards ----------------------------------------------------------------------

def shifted(frame, by: float):
    frame = same_as_reference(frame)
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"] + by
    return frame


def test_a_shifted_candidate_cannot_pass_a_spearman_gate(tmp_path, scored_rows):
    """Every clipped score 5: Spearman on the raw predictions sees nothing (the ranks
    are the same); the MAE location guard on the same slices fails the run."""
    gate = {"metric": "spearman", "max_drop": 0.02, "min_rows": 50}
    code, summary, result = gate_run(tmp_path, shifted(scored_rows, 100), gate=gate)
    assert code == 1 and summary["verdict"] == "fail", result.output
    spearman = [c for c in summary["checks"] if c["role"] == "gate"]
    guards = [c for c in summary["checks"] if c["role"] == "location_guard"]
    assert {c["metric"] for c in spearman} == {"spearman"}
    assert all(c["verdict"] != "fail" and abs(c["degradation"]) < 1e-9 for c in spearman
               if c["n"] > 0)  # blind: no degradation at all
    assert len(guards) == len(spearman)
    assert [(c["slice"], c["dimension"]) for c in guards] == \
        [(c["slice"], c["dimension"]) for c in spearman]
    assert {c["metric"] for c in guards} == {"mean_absolute_error"}
    assert {c["unit"] for c in guards} == {"rating points"}
    assert {c["max_drop"] for c in guards} == {0.05}
    all_rows = next(c for c in guards if c["slice"] == "all" and c["dimension"] == "_all")
    assert all_rows["verdict"] == "fail" and all_rows["degradation"] > 1
    assert all_rows["reason"].startswith("location guard (mean_absolute_error, rating "
                                         "points): CI")
    assert summary["gate"]["location_guard"] == {
        "metric": "mean_absolute_error", "unit": "rating points", "max_drop": 0.05,
        "blind_to": METRICS["spearman"].blind_to}
    assert summary["gate"]["range"] == [-1.0, 1.0]
    markdown = (tmp_path / "run" / "summary.md").read_text()
    assert "location guard" in markdown and "0.05 rating points" in markdown
    report = (tmp_path / "run" / "report.html").read_text()
    assert "(location guard: mean_absolute_error)" in report
    assert "max_drop 0.05 rating points" in report and "0.05 rating points</td>" in report
    junit = ET.parse(tmp_path / "run" / "junit.xml").getroot()
    names = {case.get("name") for case in junit.iter("testcase")}
    assert "all / _all (location guard: mean_absolute_error)" in names


def test_an_unshifted_candidate_passes_the_guard_and_the_guard_threshold_is_settable(
        tmp_path, scored_rows):
    gate = {"metric": "spearman", "max_drop": 0.02, "min_rows": 50, "guard_max_drop": 0.2}
    code, summary, result = gate_run(tmp_path, same_as_reference(scored_rows), gate=gate)
    guards = [c for c in summary["checks"] if c["role"] == "location_guard"]
    assert guards and {c["max_drop"] for c in guards} == {0.2}
    assert not any(c["verdict"] == "fail" for c in guards)
    assert code == 0, result.output


def test_metrics_that_see_a_shift_have_no_guard(tmp_path, scored_rows):
    code, summary, _ = gate_run(tmp_path, shifted(scored_rows, 100), gate=GATE)
    assert code == 1 and summary["gate"]["location_guard"] is None
    assert {c["role"] for c in summary["checks"]} == {"gate"}
    assert {c["unit"] for c in summary["checks"]} == {"percentage points"}
