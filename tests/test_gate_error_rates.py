"""The gate's per-run error rates, by seeded simulation on the shipped sample's slice
sizes: a lossless candidate fails at most the false-fail budget, a 6-point drop on a
400-row slice fails, and the operating characteristics a run reports match the rates
simulated runs show. The generator and the 200-run measurement live in
benchmarks/bench_gate_error_rates.py; these use fewer runs (binomial error allowed for).
"""

from __future__ import annotations

import json
import math
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_gate_error_rates as sim  # noqa: E402

RUNS = 16
BUDGET = 0.05  # gate.false_fail_budget's default


def fail_share(runs: list[dict]) -> float:
    return sum(r["verdict"] == "fail" for r in runs) / len(runs)


def binomial_se(p: float, n: int = RUNS) -> float:
    return math.sqrt(p * (1 - p) / n)


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    return sim.Stages(tmp_path_factory.mktemp("simulated"))


@pytest.fixture(scope="module")
def lossless(stages):
    return [stages.run(seed) for seed in range(RUNS)]


def test_default_gate_fails_a_lossless_candidate_at_most_the_budget(lossless):
    assert fail_share(lossless) <= BUDGET + 2 * binomial_se(BUDGET)
    assert all(r["operating_characteristics"]["within_budget"] for r in lossless)


def test_default_gate_fails_a_six_point_drop_on_a_400_row_slice(stages):
    planted = stages.planted(sim.PLANTED_SLICE)
    assert 400 <= planted.sum() <= 450
    runs = [stages.run(seed, planted, 6.0) for seed in range(RUNS)]
    assert fail_share(runs) >= 0.9


def test_reported_operating_characteristics_match_simulated_runs(stages, lossless):
    smallest = sim.scenario(lossless[0], "smallest_slice")
    assert smallest["slice"] == "sms" and smallest["drop"] == 6.0
    runs = [stages.run(seed, stages.planted("sms"), 6.0) for seed in range(RUNS)]
    predicted = sim.reported(lossless, "smallest_slice")
    assert 0.1 < predicted < 0.9  # a rate that can disagree with the simulation
    # binomial error of the simulated share, plus a margin for the estimate's own error
    assert abs(fail_share(runs) - predicted) <= 3 * binomial_se(predicted) + 0.05
    false_fail = sim.reported(lossless, "lossless")
    assert abs(fail_share(lossless) - false_fail) <= 3 * binomial_se(max(false_fail, BUDGET))


def test_cli_reports_operating_characteristics_and_rows_needed(tmp_path, stages):
    expected = stages.run(0)
    got = sim.cli_run(tmp_path, 0, None, 0.0)
    assert got == expected  # the in-process stages are the CLI's, run for run
    run = tmp_path / "run-0-None"
    summary = json.loads((run / "summary.json").read_text())
    oc = summary["gate"]["operating_characteristics"]
    assert [s["name"] for s in oc["scenarios"]] == ["lossless", "max_drop",
                                                     "twice_max_drop",
                                                     "twice_max_drop_on_slice",
                                                     "smallest_slice"]
    assert summary["gate"]["policy"] == "confident" and summary["gate"]["correction"] == "holm"
    inconclusive = [c for c in summary["checks"] if c["verdict"] == "inconclusive"]
    rated = [c for c in inconclusive if c["unseen_flips_margin"] == 0]  # ratings decide these
    assert rated and all(isinstance(c["rows_needed"], int) and c["rows_needed"] >= 50
                         and f"about {c['rows_needed']} rated rows" in c["reason"]
                         for c in rated)
    assert all(c["rows_needed"] is None for c in summary["checks"]
               if c["verdict"] != "inconclusive")
    sentence = "this gate falsely fails a lossless candidate in about"
    assert sentence in (run / "report.html").read_text()
    assert sentence in (run / "summary.md").read_text()
    assert "about" in (run / "summary.md").read_text().split("rated rows would decide")[0]


def test_point_policy_states_its_false_fail_rate_over_the_budget(tmp_path):
    got = sim.cli_run(tmp_path, 1, None, 0.0, {"policy": "point", "correction": "none"})
    oc = got["operating_characteristics"]
    assert oc["false_fail"] > 0.5 and not oc["within_budget"]
    assert "(OVER the false-fail budget" in (tmp_path / "run-1-None" / "report.html").read_text()
