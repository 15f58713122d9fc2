"""Issue 23's "Done when" loop at a reduced size, through the real CLI: score an unrated
pool, plan ratings, reveal only the planned ratings, gate. A candidate flipping about 5%
of rounded predictions with no true loss passes; one losing a planted 3 x max_drop on a
slice fails there; uniform rating of the same budget decides fewer checks than the plan.
Reduced from the issue's 30,000 rows / 3,000 ratings / max_drop 1 to 6,000 / 600 /
max_drop 2 (the same ratio of budget to pool) to stay under a minute; the full size:
benchmarks/bench_rating_budget.py."""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import rating_sim as sim  # noqa: E402

ROWS, BUDGET, SEED, MAX_DROP = 6000, 600, 11, 2.0


def plan_and_gate(tmp_path, drop: float):
    """(exit code and summary with the plan, the same with uniform ratings)."""
    frame = sim.simulate_pool(ROWS, SEED, drop_points=drop)
    pool_run = tmp_path / "pool" / "run"
    gate = lambda name, ids, plan=None: sim.write_gate(tmp_path / name, sim.revealed(
        frame, ids), plan=plan, max_drop=MAX_DROP)
    sim.run_gate(gate("pool", []), pool_run)
    plan = tmp_path / "PLAN.csv"
    ids = sim.plan_ids(pool_run, BUDGET, SEED, plan)
    planned = sim.run_gate(gate("p", ids, plan), tmp_path / "p" / "run")
    if drop:
        return planned, None
    uniform = sim.run_gate(gate("u", sim.uniform_ids(frame, BUDGET, SEED)),
                           tmp_path / "u" / "run")
    return planned, uniform


def decided(summary: dict) -> int:
    return sum(c["verdict"] != "inconclusive" for c in summary["checks"])


@pytest.mark.e2e
def test_no_true_loss_passes_with_the_plan_and_uniform_decides_less(tmp_path):
    (code, summary), (_, uniform) = plan_and_gate(tmp_path, drop=0.0)
    assert code == 0, [(c["slice"], c["dimension"], c["verdict"], c["reason"])
                       for c in summary["checks"] if c["verdict"] != "pass"]
    assert decided(uniform) < decided(summary)


@pytest.mark.e2e
def test_a_planted_loss_on_one_slice_fails_there(tmp_path):
    (code, summary), _ = plan_and_gate(tmp_path, drop=3 * MAX_DROP)
    assert code == 1
    failed = {c["slice"] for c in summary["checks"] if c["verdict"] == "fail"}
    assert sim.DROP_SLICE in failed and failed <= {sim.DROP_SLICE, "all"}
