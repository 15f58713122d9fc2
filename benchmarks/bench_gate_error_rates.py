"""Per-run error rates of the gate, measured by seeded simulation: how often a run fails
a lossless candidate, and how often it catches a drop planted on one slice, on the
shipped sample's 2,150 validation rows with the shipped slice pack (17 slices x 8
dimensions = 136 checks), and how close the operating characteristics each run
reports are to those rates.

Each run draws a fresh model: a latent prediction = human mean + N(0, 0.45) per row and
dimension; the reference and the candidate are that plus independent N(0, 0.15)
quantization-like jitter each (identical in distribution: no true drop). A planted drop
moves ``drop`` percent of a slice's rows, among those where the candidate agreed with
the human, one rating point off, on every dimension.

``--mode stages`` (default) runs the gate's own stages (metrics, statistics, gate,
operating characteristics) in process on the columns; ``--mode cli`` writes each run's
sample and runs ``validator run`` (about 10 s a run on 2 cores).

Usage: python benchmarks/bench_gate_error_rates.py [--runs 200] [--compare-runs 50]
       [--mode stages|cli]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from validator.config import DEFAULT_DIMENSIONS, load_config
from validator.judge.gate import evaluate_gate
from validator.metrics import compute_metrics, round_rating
from validator.judge.operating import operating_characteristics
from validator.data.sample import load_sample
from validator.data.slices import assign_slices, load_slices
from validator.data.slices.dsl import with_derived_columns

ROOT = Path(__file__).resolve().parents[1]  # the repository (slices/, fixtures/)
SCALE = (1, 5)
MODEL_NOISE, JITTER = 0.45, 0.15
PLANTED_SLICE, PLANTED_DROP = "short_copy", 6.0   # 432 validation rows


def validation_rows() -> pd.DataFrame:
    frame = pd.read_csv(ROOT / "fixtures" / "sample.csv")
    rated = frame.filter(regex=r"_r[12]$").notna().any(axis=1)  # the pool is unrated
    return frame[(frame.split == "validation") & rated].reset_index(drop=True)


def simulated_run(frame: pd.DataFrame, seed: int, planted: np.ndarray | None = None,
                  drop: float = 0.0) -> pd.DataFrame:
    """``frame`` plus ``{dimension}_ref`` / ``{dimension}_cand`` predictions of one run;
    ``planted``: boolean rows of the slice that loses ``drop`` points."""
    rng = np.random.default_rng([seed, 11])
    out = frame.copy()
    for d in DEFAULT_DIMENSIONS:
        human = out[[f"{d}_r1", f"{d}_r2"]].mean(axis=1).to_numpy()
        latent = human + rng.normal(0, MODEL_NOISE, len(out))
        ref = latent + rng.normal(0, JITTER, len(out))
        cand = latent + rng.normal(0, JITTER, len(out))
        if planted is not None and drop:
            rounded_h = round_rating(human, SCALE)
            agree = np.flatnonzero(planted & (round_rating(cand, SCALE) == rounded_h))
            moved = rng.choice(agree, int(round(drop / 100 * planted.sum())), replace=False)
            cand[moved] = np.where(rounded_h[moved] >= 3, rounded_h[moved] - 1,
                                   rounded_h[moved] + 1)
        out[f"{d}_ref"], out[f"{d}_cand"] = ref, cand
    return out


def gate_config(sample: Path, gate: dict | None = None) -> dict:
    return {"sample": {"path": str(sample)},
            "rubric": {"scale": list(SCALE),
                       "dimensions": {d: [f"{d}_r1", f"{d}_r2"] for d in DEFAULT_DIMENSIONS}},
            "slices": [str(ROOT / "slices")],
            "reference": {"name": "ref", "backend": "columns", "columns": "{dimension}_ref"},
            "candidates": [{"name": "cand", "backend": "columns",
                            "columns": "{dimension}_cand"}],
            "gate": {"metric": "exact_agreement", "max_drop": 1.0, "min_rows": 50,
                     **(gate or {})}}


class Stages:
    """The gate's stages after scoring, in process: the sample is loaded and validated
    once, each run only swaps the prediction columns."""

    def __init__(self, folder: Path, gate: dict | None = None):
        frame = validation_rows()
        path = folder / "sample.parquet"
        simulated_run(frame, 0).to_parquet(path, index=False)
        config_path = folder / "gate.yaml"
        config_path.write_text(yaml.safe_dump(gate_config(path, gate)))
        self.config = load_config(config_path)
        slice_set = load_slices(self.config.slices)
        self.sample = load_sample(self.config, slice_set.expectations)
        self.masks = assign_slices(slice_set, self.sample.frame)
        self.frame = frame.set_index(frame.id.astype(str)).loc[self.sample.frame.index]

    def planted(self, slice_name: str) -> np.ndarray:
        return self.masks[slice_name].to_numpy()

    def run(self, seed: int, planted: np.ndarray | None = None, drop: float = 0.0) -> dict:
        frame = simulated_run(self.frame, seed, planted, drop)
        dimensions = list(self.config.rubric.dimensions)  # the human columns' order
        scores = {name: frame[[f"{d}_{name}" for d in dimensions]].to_numpy()
                  for name in ("ref", "cand")}
        config = self.config.model_copy(update={"seed": seed})
        metrics = compute_metrics(self.sample.human, scores, self.masks, SCALE)
        result = evaluate_gate(metrics, self.sample.human, scores, self.masks, config)
        return {"verdict": result.verdict,
                "operating_characteristics": operating_characteristics(
                    result, self.masks, config.gate, seed)}


def cli_run(folder: Path, seed: int, planted_slice: str | None, drop: float,
            gate: dict | None = None) -> dict:
    frame = validation_rows()
    planted = None
    if planted_slice is not None:
        planted = assign_slices(load_slices([ROOT / "slices"]),
                                with_derived_columns(frame, "text"))[planted_slice].to_numpy()
    run_dir = folder / f"run-{seed}-{planted_slice}"
    sample = folder / f"sample-{seed}.parquet"
    simulated_run(frame, seed, planted, drop).to_parquet(sample, index=False)
    config = folder / f"gate-{seed}.yaml"
    config.write_text(yaml.safe_dump({**gate_config(sample, gate), "seed": seed}))
    subprocess.run([sys.executable, "-m", "validator", "run", "--config", str(config),
                    "--out", str(run_dir), "--quiet"], check=False, capture_output=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"verdict": summary["verdict"],
            "operating_characteristics": summary["gate"]["operating_characteristics"]}


def fail_rate(runs: list[dict]) -> dict:
    share = sum(r["verdict"] == "fail" for r in runs) / len(runs)
    return {"runs": len(runs), "fail": share,
            "binomial_se": math.sqrt(share * (1 - share) / len(runs))}


def scenario(run: dict, name: str) -> dict:
    return next(s for s in run["operating_characteristics"]["scenarios"] if s["name"] == name)


def reported(runs: list[dict], name: str) -> float:
    """The mean over runs of the rate the runs' own operating characteristics report."""
    return float(np.mean([scenario(r, name)["fail"] for r in runs]))


def measure(runs: int, mode: str, gate: dict | None = None) -> dict:
    """Lossless runs, a 6-point drop on short_copy (432 rows), and a 6-point drop on the
    smallest gated slice (sms, 88 rows), which the runs' operating characteristics
    predict."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if mode == "stages":
            stages = Stages(folder, gate)
            lossless = [stages.run(seed) for seed in range(runs)]
            smallest = scenario(lossless[0], "smallest_slice")["slice"]
            outcomes = {name: [stages.run(seed, stages.planted(name), PLANTED_DROP)
                               for seed in range(runs)]
                        for name in (PLANTED_SLICE, smallest)}
        else:
            lossless = [cli_run(folder, seed, None, 0.0, gate) for seed in range(runs)]
            smallest = scenario(lossless[0], "smallest_slice")["slice"]
            outcomes = {name: [cli_run(folder, seed, name, PLANTED_DROP, gate)
                               for seed in range(runs)] for name in (PLANTED_SLICE, smallest)}
    return {"gate": gate or "default",
            "lossless": {**fail_rate(lossless), "reported": reported(lossless, "lossless")},
            "planted": {"slice": PLANTED_SLICE, "drop": PLANTED_DROP,
                        **fail_rate(outcomes[PLANTED_SLICE])},
            "smallest_slice": {"slice": smallest, "drop": PLANTED_DROP,
                               **fail_rate(outcomes[smallest]),
                               "reported": reported(lossless, "smallest_slice")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--compare-runs", type=int, default=50,
                        help="runs for the point and uncorrected confident policies")
    parser.add_argument("--mode", choices=["stages", "cli"], default="stages")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).with_name("results-gate-error-rates.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    results = []
    for runs, gate in ((args.runs, None),
                       (args.compare_runs, {"policy": "confident", "correction": "none"}),
                       (args.compare_runs, {"policy": "point", "correction": "none"})):
        results.append(measure(runs, args.mode, gate))
        print(json.dumps(results[-1]), flush=True)
    report = {"mode": args.mode, "results": results,
              "seconds": round(time.perf_counter() - start, 1)}
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
