"""Scale benchmark: a 1,000,000-row sample (columns backend) validated with
great-expectations, sliced with the shipped pack and gated, end to end through the
CLI, with wall time and the peak resident memory of the run.

Usage: python benchmarks/bench_million.py [--rows 1000000] [--gate columns|ray]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from synthetic import ROOT, columns_gate, resampled_sample



def ray_gate(sample: str) -> dict:
    """The default scorer and its INT8 twin with model scoring on Ray. Every row is a gate
    row repeating one of the shipped sample's validation texts, so with a warm cache
    (after one default run) no row is scored and the figures are the driver's alone (the
    onnx-int8-static twin is left out: it calibrates on calibration rows, which this
    sample lacks)."""
    from validator.config import DEFAULT_CONFIG

    return {**DEFAULT_CONFIG, "sample": {**DEFAULT_CONFIG["sample"], "path": sample},
            "candidates": DEFAULT_CONFIG["candidates"][:1], "slices": [str(ROOT / "slices")],
            "execution": {"engine": "ray"}}


def build(folder: Path, rows: int, gate: str = "columns") -> Path:
    resampled_sample(rows, {"int8": 0.15}, split="validation" if gate == "ray" else None) \
        .to_parquet(folder / "sample.parquet", index=False)
    config = ray_gate("sample.parquet") if gate == "ray" else \
        columns_gate("sample.parquet", ["int8"], [str(ROOT / "slices")])
    path = folder / "gate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--gate", choices=["columns", "ray"], default="columns",
                        help="ray: the default model gate with execution.engine ray")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.out = args.out or Path("benchmarks/results-million.json" if args.gate == "columns"
                                else "benchmarks/results-million-ray.json")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        config = build(folder, args.rows, args.gate)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "validator", "run", "--config",
                                 str(config), "--out", str(folder / "run"), "--quiet"],
                                capture_output=True, text=True)
        seconds = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak = usage.ru_maxrss * 1024
        summary = json.loads((folder / "run" / "summary.json").read_text()) \
            if result.returncode in (0, 1) else {}
    report = {"rows": args.rows, "gate": args.gate, "exit_code": result.returncode,
              "verdict": summary.get("verdict"), "checks": len(summary.get("checks", [])),
              "slices": len(summary.get("slices", [])) - 1 if summary else 0,  # without `all`
              "expectations": len(summary.get("data_checks", [])),
              "wall_s": round(seconds, 1),
              "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),  # of the run, all threads
              "load_average_1min": round(os.getloadavg()[0], 1),
              "peak_rss_bytes": peak,
              "peak_rss_gb": round(peak / 1e9, 2), "stderr": result.stderr[-500:]}
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
