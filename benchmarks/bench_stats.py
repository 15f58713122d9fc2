"""Statistics benchmark: paired bootstrap CIs, McNemar, flips and detectability for
100,000 rows x 20 slices x 7 dimensions x 2 candidates with 1,000 resamples.

Times the gate's statistics (``build_checks``) alone, and the metric table before it.
Usage: python benchmarks/bench_stats.py [--rows 100000] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from validator.config import parse_config
from validator.judge.gate import build_checks
from validator.metrics import compute_metrics

DIMENSIONS = ["clarity", "persuasiveness", "brand_voice", "grammar", "call_to_action",
              "compliance", "tone"]


def synthetic(rows: int, slices: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    human = pd.DataFrame(np.round(rng.uniform(1, 5, (rows, len(DIMENSIONS))) * 2) / 2,
                         columns=DIMENSIONS)
    reference = human.to_numpy() + rng.normal(0, 0.6, human.shape)
    scores = {"ref": reference,
              "int8": reference + rng.normal(0, 0.1, human.shape),
              "onnx": reference + rng.normal(0, 0.15, human.shape)}
    shares = np.geomspace(0.01, 1.0, slices - 1)  # 1% ... 100% of the rows
    masks = pd.DataFrame({"all": np.ones(rows, dtype=bool),
                          **{f"slice_{i:02d}": rng.random(rows) < share
                             for i, share in enumerate(shares)}})
    return human, scores, masks


def timed(fn):
    """(wall seconds, CPU seconds of this process, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--slices", type=int, default=20)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results-stats.json"))
    args = parser.parse_args()
    human, scores, masks = synthetic(args.rows, args.slices)
    config = parse_config({
        "sample": {"path": "unused.csv"},
        "rubric": {"scale": [1, 5], "dimensions": {d: d for d in DIMENSIONS}},
        "reference": {"name": "ref", "backend": "columns", "columns": "{dimension}"},
        "candidates": [{"name": "int8", "backend": "columns", "columns": "{dimension}"},
                       {"name": "onnx", "backend": "columns", "columns": "{dimension}"}],
        "gate": {"bootstrap_resamples": args.resamples, "policy": "confident",
                 "correction": "holm"}}, "<benchmark>", Path("."))
    metrics_s, metrics_cpu_s, metrics = timed(lambda: compute_metrics(human, scores, masks,
                                                                     (1, 5)))
    stats_s, stats_cpu_s, (checks, _) = timed(lambda: build_checks(metrics, human, scores,
                                                                   masks, config))
    result = {"rows": args.rows, "slices": args.slices, "dimensions": len(DIMENSIONS),
              "candidates": 2, "resamples": args.resamples, "checks": len(checks),
              "cores": os.cpu_count(), "metrics_table_s": round(metrics_s, 2),
              "statistics_s": round(stats_s, 2),
              # CPU seconds of this process (all threads): less sensitive than wall time
              # to other work on a shared machine; the load average says how shared it was
              "metrics_table_cpu_s": round(metrics_cpu_s, 2),
              "statistics_cpu_s": round(stats_cpu_s, 2),
              "load_average_1min": round(os.getloadavg()[0], 1)}
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
