"""Ratings spent three ways at the same budget (issue 23): uniform rating, the
flip-targeted plan of ``validator plan-ratings``, and prediction-powered inference
(PPI, ``ppi-python``, with the reference's rounded predictions as the proxy rating).

Two pools with a known truth, ratings hidden and revealed only for the ids a strategy
asks for:
- simulated (``rating_sim``): a candidate flipping about 5% of rounded predictions with
  no true loss, and a variant losing about 3 points on one slice;
- ``--default``: the shipped sample's rated validation rows, scored by the real default
  model (truth: the run with every rating revealed).

Uniform and plan drive the real CLI (``validator run``; ``validator plan-ratings`` on a
run over the unrated pool, then ``validator run`` with ``sample.rating_plan``) and read
summary.json: median CI half-width of the candidate's checks, checks decided (not
inconclusive), exit code, coverage of the true degradation. PPI is computed here on the
uniform rows (``ppi_py.ppi_mean_ci``), per check, as the anchor.

Usage:
  python benchmarks/bench_rating_budget.py --rows 30000 --seeds 1
  python benchmarks/bench_rating_budget.py --default --budgets 0.1 0.25 0.5
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import rating_sim as sim

HERE = Path(__file__).resolve().parent


def summarise(summary: dict, code: int, truth: dict | None, candidates=None) -> dict:
    """Median half-width, decided checks and coverage of one run's candidate checks."""
    checks = [c for c in summary["checks"]
              if candidates is None or c["candidate"] in candidates]
    half = [(c["ci_high"] - c["ci_low"]) / 2 for c in checks
            if c["ci_low"] is not None and c["ci_high"] is not None]
    out = {"exit_code": code, "checks": len(checks),
           "decided": sum(c["verdict"] != "inconclusive" for c in checks),
           "failed_slices": sorted({c["slice"] for c in checks if c["verdict"] == "fail"}),
           "median_half_width": float(np.median(half)) if half else None}
    if truth is not None:
        inside = [c["ci_low"] <= truth[(c["candidate"], c["slice"], c["dimension"])]
                  <= c["ci_high"] for c in checks
                  if c["ci_low"] is not None and (c["candidate"], c["slice"],
                                                  c["dimension"]) in truth]
        out["coverage"] = float(np.mean(inside)) if inside else None
    return out


def ppi_checks(frame: pd.DataFrame, ids, max_drop: float) -> dict:
    """PPI per (slice, dimension) check of the simulated pool: labelled = ``ids``."""
    from ppi_py import ppi_mean_ci

    labelled = frame["id"].isin(set(ids)).to_numpy()
    half, decided = [], 0
    for name in ["all", *sim.SEGMENTS]:
        in_slice = np.ones(len(frame), bool) if name == "all" else \
            (frame["segment"] == name).to_numpy()
        for dims in [[d] for d in sim.DIMENSIONS] + [list(sim.DIMENSIONS)]:
            y, proxy = row_differences(frame, dims)
            rows_l, rows_u = np.tile(in_slice & labelled, len(dims)), \
                np.tile(in_slice & ~labelled, len(dims))
            low, high = ppi_mean_ci(y[rows_l], proxy[rows_l], proxy[rows_u], alpha=0.05)
            low, high = float(np.ravel(low)[0]), float(np.ravel(high)[0])
            half.append((high - low) / 2)
            decided += bool(high <= max_drop or low > max_drop)
    return {"median_half_width": float(np.median(half)), "decided": decided,
            "checks": len(half)}


def row_differences(frame: pd.DataFrame, dims: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per (row, dimension): 100 x (reference agrees - candidate agrees) with the human,
    and the same with the reference's rounded prediction standing in for the human."""
    rounded = lambda x: np.floor(np.clip(x, 1, 5) + 0.5)
    y, proxy = [], []
    for d in dims:
        ref, cand = rounded(frame[f"{d}_ref"].to_numpy()), rounded(frame[f"{d}_cand"].to_numpy())
        human = frame[d].to_numpy()
        y.append(100.0 * ((ref == human).astype(float) - (cand == human)))
        proxy.append(100.0 * (1 - (cand == ref)))
    return np.concatenate(y), np.concatenate(proxy)


def simulated(rows: int, seed: int, drop: float, budgets: list[float], work: Path) -> list:
    frame = sim.simulate_pool(rows, seed, drop_points=drop)
    truth = {("cand", s, d): v for (s, d), v in sim.true_degradation(frame).items()}
    pool_run = work / "pool" / "run"
    sim.run_gate(sim.write_gate(work / "pool", sim.revealed(frame, [])), pool_run)
    results = []
    for share in budgets:
        budget = int(share * rows)
        uniform = sim.uniform_ids(frame, budget, seed)
        code, summary = sim.run_gate(sim.write_gate(work / "u", sim.revealed(frame, uniform)),
                                     work / "u" / "run")
        plan = work / "PLAN.csv"
        planned = sim.plan_ids(pool_run, budget, seed, plan)
        code_p, summary_p = sim.run_gate(
            sim.write_gate(work / "p", sim.revealed(frame, planned), plan=plan),
            work / "p" / "run")
        results.append({"pool": "simulated", "rows": rows, "seed": seed, "drop": drop,
                        "budget": budget, "share": share,
                        "uniform": summarise(summary, code, truth),
                        "plan": summarise(summary_p, code_p, truth),
                        "ppi": ppi_checks(frame, uniform, 1.0)})
        print(json.dumps(results[-1]), flush=True)
    return results


def default_sample(budgets: list[float], seed: int, work: Path) -> list:
    """The shipped sample's rated validation rows as a pool with hidden ratings."""
    from validator.config import DEFAULT_CONFIG_FILE

    raw = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text(encoding="utf-8"))
    frame = pd.read_csv(DEFAULT_CONFIG_FILE.parent / "sample.csv")
    raters = [c for c in frame.columns if c.endswith(("_r1", "_r2"))]
    frame = frame[frame[raters].notna().any(axis=1)].reset_index(drop=True)
    gate_ids = frame.loc[frame["split"] == "validation", "id"]

    def gate(name: str, ids, plan: Path | None = None) -> tuple[int, dict]:
        sample = frame.copy()
        sample.loc[frame["split"].eq("validation") & ~frame["id"].isin(set(ids)), raters] = np.nan
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        sample.to_csv(folder / "sample.csv", index=False)
        config = {**raw, "slices": [str(DEFAULT_CONFIG_FILE.parent / "slices")],
                  "sample": {**raw["sample"], "path": "sample.csv",
                             **({"rating_plan": str(plan)} if plan else {})},
                  "report": {"out": "reports"}}
        config["sample"].pop("production_mix", None)  # the pool's mix is not the shares
        (folder / "gate.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        return sim.run_gate(folder / "gate.yaml", folder / "run")

    _, full = gate("full", gate_ids)
    truth = {(c["candidate"], c["slice"], c["dimension"]): c["degradation"]
             for c in full["checks"]}
    gate("pool", [])
    rng = np.random.default_rng(seed)
    results = []
    for share in budgets:
        budget = int(share * len(gate_ids))
        uniform = rng.choice(gate_ids.to_numpy(), budget, replace=False)
        code, summary = gate("uniform", uniform)
        planned = sim.plan_ids(work / "pool" / "run", budget, seed, work / "PLAN.csv")
        code_p, summary_p = gate("plan", planned, work / "PLAN.csv")
        results.append({"pool": "default", "rows": len(gate_ids), "budget": budget,
                        "share": share, "uniform": summarise(summary, code, truth),
                        "plan": summarise(summary_p, code_p, truth)})
        print(json.dumps(results[-1]), flush=True)
    return results


def done_when(results: list[dict]) -> dict:
    """Issue 23's acceptance figures per budget: seeded runs that pass with no true loss,
    runs that fail on the planted slice, and runs where uniform rating decides fewer
    checks than the plan."""
    tally = {}
    for share in sorted({r["share"] for r in results}):
        mine = [r for r in results if r["share"] == share]
        lossless = [r for r in mine if r["drop"] == 0]
        dropped = [r for r in mine if r["drop"] > 0]
        tally[str(share)] = {
            "lossless_runs": len(lossless),
            "plan_passes": sum(r["plan"]["exit_code"] == 0 for r in lossless),
            "uniform_passes": sum(r["uniform"]["exit_code"] == 0 for r in lossless),
            "dropped_runs": len(dropped),
            "plan_fails_on_planted_slice": sum(sim.DROP_SLICE in r["plan"]["failed_slices"]
                                               for r in dropped),
            "uniform_fails_on_planted_slice": sum(
                sim.DROP_SLICE in r["uniform"]["failed_slices"] for r in dropped),
            "uniform_decides_fewer": sum(r["uniform"]["decided"] < r["plan"]["decided"]
                                         for r in mine),
            "runs": len(mine)}
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=30000)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.1, 0.25, 0.5])
    parser.add_argument("--drops", type=float, nargs="+", default=[0.0, 3.0])
    parser.add_argument("--default", action="store_true",
                        help="the shipped sample with the real default model instead")
    parser.add_argument("--out", type=Path, default=HERE / "results-rating-budget.json")
    args = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        if args.default:
            results = default_sample(args.budgets, 0, Path(tmp))
        else:
            results = [r for seed in range(args.seeds) for drop in args.drops
                       for r in simulated(args.rows, seed, drop, args.budgets,
                                          Path(tmp) / f"{seed}-{drop}")]
    record = {"command": "python benchmarks/bench_rating_budget.py "
                        + ("--default" if args.default else
                           f"--rows {args.rows} --seeds {args.seeds} "
                           f"--drops {' '.join(map(str, args.drops))}")
                        + f" --budgets {' '.join(map(str, args.budgets))}",
              "seconds": round(time.time() - started, 1), "results": results}
    if not args.default:
        record["done_when"] = done_when(results)
        print(json.dumps(record["done_when"], indent=1))
    existing = json.loads(args.out.read_text()) if args.out.exists() else {}
    existing["default" if args.default else "simulated"] = record
    args.out.write_text(json.dumps(existing, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
