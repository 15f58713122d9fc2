"""Cold default run (issue 15): `validator run` with an empty cache, this tree against
an earlier commit, in one benchmark run.

Each revision is checked out into a temporary git worktree and run as
``python -m validator run --quiet`` from that worktree (so its own package and
assets are imported, with this environment's installed libraries), with
``SLICE_VALIDATOR_CACHE`` pointing at a fresh empty folder: every artefact is built
(the default scorer's assembly, the ONNX export, calibration, quantization) and every
row scored. Then a warm re-run of each with the cache the cold run left. Revisions
alternate (bases, this, bases, this, ...) over ``--attempts`` rounds so a drift in the
machine's load hits both; the 1-minute load average is recorded beside each run, and
the CPU seconds of the run's process tree (``resource.getrusage(RUSAGE_CHILDREN)``).

python benchmarks/bench_cold_run.py --base e4feb29 --base 8d31ba5 [--attempts 2] [--out FILE]
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# each scorer's figures as the run reported them (the base's in-run measurement; this
# tree's isolated one), for the before/after table
SPEED_FIGURES = ("size_bytes", "peak_rss_bytes", "memory_bytes", "latency_ms_p50",
                 "latency_ms_p95", "throughput_rows_per_s", "capacity_rps",
                 "scoring_seconds", "build_seconds")


def worktree(revision: str, folder: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder),
                    revision], check=True, capture_output=True)
    return folder


def timed_run(tree: Path, cache: Path, out: Path) -> dict:
    env = {**os.environ, "SLICE_VALIDATOR_CACHE": str(cache), "PYTHONPATH": str(tree)}
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "validator", "run", "--quiet", "--out",
                             str(out)], cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode not in (0, 1):
        raise SystemExit(f"{tree}: exit {result.returncode}\n{result.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime)
            + (after.ru_stime - before.ru_stime), "exit": result.returncode,
            "counts": summary["counts"], "load_average": load,
            "scorers": {s["name"]: {k: s.get(k) for k in SPEED_FIGURES}
                        for s in summary["scorers"]}}


def commit_of(revision: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", revision],
                          check=True, capture_output=True, text=True).stdout.strip()


def measure(revisions: dict[str, str], attempts: int) -> dict:
    results: dict[str, list] = {label: [] for label in revisions}
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as scratch:
        root = Path(scratch)
        trees = {label: worktree(rev, root / label.replace(" ", "-"))
                 for label, rev in revisions.items()}
        try:
            for attempt in range(attempts):
                for label, tree in trees.items():
                    stem = f"{tree.name}-{attempt}"
                    cache = root / f"cache-{stem}"
                    cold = timed_run(tree, cache, root / f"out-{stem}-cold")
                    warm = timed_run(tree, cache, root / f"out-{stem}-warm")
                    print(attempt, label, "cold", cold, "warm", warm, flush=True)
                    results[label].append({"cold": cold, "warm": warm})
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(tree)], capture_output=True)
    best = {label: {kind: min((r[kind] for r in runs), key=lambda r: r["wall_s"])
                    for kind in ("cold", "warm")} for label, runs in results.items()}
    this = best["this"]
    ratios = {label: {"cold_wall": this["cold"]["wall_s"] / base["cold"]["wall_s"],
                      "cold_cpu": this["cold"]["cpu_s"] / base["cold"]["cpu_s"],
                      "warm_wall": this["warm"]["wall_s"] / base["warm"]["wall_s"]}
              for label, base in best.items() if label != "this"}
    return {"revisions": revisions, "attempts": results, "best": best,
            "this_vs": ratios, "cores": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, action="append",
                        help="an earlier commit to compare with (repeatable)")
    parser.add_argument("--this", default="HEAD",
                        help="the revision measured (default HEAD: the last commit, not "
                             "uncommitted changes)")
    parser.add_argument("--attempts", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results-cold-run.json")
    args = parser.parse_args()
    found = measure({**{f"base {rev}": commit_of(rev) for rev in args.base},
                     "this": commit_of(args.this)}, args.attempts)
    args.out.write_text(json.dumps(found, indent=2))
    print(json.dumps({k: v for k, v in found.items() if k != "attempts"}, indent=2))


if __name__ == "__main__":
    main()
