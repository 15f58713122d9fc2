"""Discovery's cost, against the two targets of issue 14.

(a) share: the default gate (shipped sample, 2,150 rows, 7 dimensions, 2 INT8
    candidates) run warm (every prediction from the cache) without and with
    ``discovery: {enabled: true}``; then discovery alone, in-process, on the first run's
    directory (best of 3). Share = discovery's CPU seconds / the warm run's CPU seconds
    (target: under 10%); wall seconds are recorded too, with the load average, since
    wall time on a shared machine grows with the load and CPU time much less.
(b) scale: a 100,000-row sample (columns backend, the shipped sample resampled, a
    noisier candidate) is gated once, then ``validator discover`` runs on the run
    directory; the figure is discovery's wall time alone (target: under 60 s on 2 cores).

Usage: python benchmarks/bench_discover.py [--only share|scale] [--rows 100000]
(the default gate's predictions must be cached: run ``validator run`` once before).
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

from validator.config import DiscoveryConfig

ASSETS = ROOT / "validator" / "assets"
REPEATS = 3


def cli(*args: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """(result, wall seconds, CPU seconds of the child: the machine is shared)."""
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run([sys.executable, "-m", "validator", *args], capture_output=True,
                            text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result, time.perf_counter() - start, cpu


def load() -> float:
    return round(os.getloadavg()[0], 2)


def default_config(folder: Path, discovery: bool) -> Path:
    """The embedded default gate with absolute paths, discovery on or off."""
    config = yaml.safe_load((ASSETS / "default.yaml").read_text())
    config["sample"]["path"] = str(ASSETS / config["sample"]["path"])
    config["slices"] = [str(ASSETS / path) for path in config["slices"]]
    config["discovery"] = {"enabled": discovery}
    path = folder / f"default-discovery-{'on' if discovery else 'off'}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def share() -> dict:
    """(a): discovery's added share of the default run's warm time."""
    from validator.after.discover import discover

    with tempfile.TemporaryDirectory() as scratch:
        folder, runs = Path(scratch), {}
        for discovery in (False, True):
            name = "on" if discovery else "off"
            before = load()
            result, wall, cpu = cli("run", "--config", str(default_config(folder, discovery)),
                                    "--out", str(folder / name), "--quiet")
            summary = json.loads((folder / name / "summary.json").read_text())
            runs[name] = {"exit_code": result.returncode, "wall_s": round(wall, 1),
                          "cpu_s": round(cpu, 1), "load_before": before, "load_after": load(),
                          "rows_from_cache": sum(s["rows_from_cache"]
                                                 for s in summary["scorers"]),
                          "rows_scored": sum(s["rows_scored"] for s in summary["scorers"]),
                          "discovery_in_summary": summary.get("discovery") is not None}
        timings = []
        for _ in range(REPEATS):
            start, cpu = time.perf_counter(), time.process_time()
            record = discover(folder / "off", DiscoveryConfig(enabled=True))
            timings.append((time.process_time() - cpu, time.perf_counter() - start))
    cpu, wall = min(timings)
    return {"runs": runs, "discovery_cpu_s": round(cpu, 2), "discovery_wall_s": round(wall, 2),
            "share_of_warm_run_cpu": round(cpu / runs["off"]["cpu_s"], 3),
            "share_of_warm_run_wall": round(wall / runs["off"]["wall_s"], 3),
            "end_to_end_added_cpu_s": round(runs["on"]["cpu_s"] - runs["off"]["cpu_s"], 1),
            "end_to_end_added_wall_s": round(runs["on"]["wall_s"] - runs["off"]["wall_s"], 1),
            "groups": len(record["slices"]),
            "confirmed": sum(s["confirmed"] for s in record["slices"])}


def scale(rows: int) -> dict:
    """(b): ``validator discover`` on a run of ``rows`` rows (columns backend)."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        resampled_sample(rows, {"int8": 0.15}).to_parquet(folder / "sample.parquet",
                                                          index=False)
        config = columns_gate("sample.parquet", ["int8"], [str(ROOT / "slices")])
        (folder / "gate.yaml").write_text(yaml.safe_dump(config))
        gate, gate_s, _ = cli("run", "--config", str(folder / "gate.yaml"), "--out",
                              str(folder / "run"), "--quiet")
        before = load()
        found, discover_s, discover_cpu = cli("discover", str(folder / "run"))
        record = json.loads((folder / "run" / "discovered-slices.json").read_text()) \
            if found.returncode == 0 else {}
    return {"rows": rows, "gate_exit_code": gate.returncode, "gate_wall_s": round(gate_s, 1),
            "discover_exit_code": found.returncode, "discover_wall_s": round(discover_s, 1),
            "discover_cpu_s": round(discover_cpu, 1), "load_before": before,
            "load_after": load(), "features": record.get("features", {}).get("count"),
            "groups": len(record.get("slices", [])),
            "confirmed": sum(s["confirmed"] for s in record.get("slices", [])),
            "stderr": (gate.stderr + found.stderr)[-500:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["share", "scale"])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results-discover.json"))
    args = parser.parse_args()
    report = {"cores": len(os.sched_getaffinity(0))}
    if args.only in (None, "share"):
        report["share"] = share()
    if args.only in (None, "scale"):
        report["scale"] = scale(args.rows)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
