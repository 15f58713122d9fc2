"""Discovery at scale: a 100,000-row sample (columns backend, the shipped sample
resampled, a noisier candidate) is gated once, then ``validator discover`` runs on the
run directory; the figure is discovery's wall time alone (target: under 60 s on 2 cores).

Usage: python benchmarks/bench_discover.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from synthetic import columns_gate, resampled_sample

from validator.config import PROJECT_ROOT


def cli(*args: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """(result, wall seconds, CPU seconds of the child: the machine is shared)."""
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run([sys.executable, "-m", "validator", *args], capture_output=True,
                            text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result, time.perf_counter() - start, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results-discover.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        resampled_sample(args.rows, {"int8": 0.15}).to_parquet(folder / "sample.parquet",
                                                               index=False)
        config = columns_gate("sample.parquet", ["int8"], [str(PROJECT_ROOT / "slices")])
        (folder / "gate.yaml").write_text(yaml.safe_dump(config))
        gate, gate_s, _ = cli("run", "--config", str(folder / "gate.yaml"), "--out",
                           str(folder / "run"), "--quiet")
        found, discover_s, discover_cpu = cli("discover", str(folder / "run"))
        record = json.loads((folder / "run" / "discovered-slices.json").read_text()) \
            if found.returncode == 0 else {}
    report = {"rows": args.rows, "gate_exit_code": gate.returncode,
              "gate_wall_s": round(gate_s, 1), "discover_exit_code": found.returncode,
              "discover_wall_s": round(discover_s, 1),
              "discover_cpu_s": round(discover_cpu, 1),
              "features": record.get("features", {}).get("count"),
              "groups": len(record.get("slices", [])),
              "confirmed": sum(s["confirmed"] for s in record.get("slices", [])),
              "stderr": (gate.stderr + found.stderr)[-500:]}
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
