"""Ray engine benchmark: 20,000 distinct rows scored by the default scorer (the fp32
reference as the default gate runs it, a TorchScript trace) locally and on a Ray
instance of 2 worker processes on this machine, each part in a fresh process, without
the prediction cache. Reports the wall-time ratio, the overhead (Ray start, each actor
pool's start, per-call cost), the CPU seconds of each scoring (Ray's daemons and
actors included, sampled) and a paper estimate of rows/hour on N CPU nodes from the measured per-row cost.

Usage: python benchmarks/bench_ray.py [--rows 20000] [--out benchmarks/results-ray.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

NODE_CORES = 16          # the paper estimate's node: 16 cores, like a common cloud CPU VM
NODES = [1, 4, 16, 64]


def texts(rows: int) -> list[str]:
    """``rows`` distinct texts: the shipped sample's texts in turn, each made distinct by a
    row number (a few tokens longer than the originals)."""
    import pandas as pd

    from validator.config import DEFAULT_CONFIG_FILE

    base = pd.read_csv(DEFAULT_CONFIG_FILE.parent / "sample.csv")["text"].tolist()
    return [f"{base[i % len(base)]} ({i})" for i in range(rows)]


def reference():
    from validator.config import default_config
    from validator.plan import make_plan
    from validator.scorers import no_progress
    from validator.scoring import build_scorer

    config = default_config()
    plan = make_plan(config)
    return build_scorer(config.reference, config, None, plan.sample, Path("."), no_progress)


class CpuSeconds:
    """CPU seconds of this process and every process under it (Ray's daemons and actors,
    sampled while they live, since actors exit before they could be waited for)."""

    def __init__(self):
        import psutil

        self.root, self.seen, self._stop = psutil.Process(), {}, threading.Event()

    def _sample(self) -> None:
        import psutil

        for process in [self.root, *self.root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                self.seen[process.pid] = times.user + times.system

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def __enter__(self) -> "CpuSeconds":
        self._sample()
        self.before = sum(self.seen.values())
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._sample()
        self._stop.set()
        self._thread.join()
        self.seconds = sum(self.seen.values()) - self.before


def part(name: str, rows: int) -> dict:
    from validator.config import ExecutionConfig
    from validator.engine import RayEngine

    batch = texts(rows)
    scorer = reference()
    result = {}
    if name == "local":
        start = time.perf_counter()
        with CpuSeconds() as cpu:
            scorer.predict(batch)
        result["score_s"] = time.perf_counter() - start
    else:
        engine = RayEngine(ExecutionConfig(engine="ray", num_workers=2), "bench")
        start = time.perf_counter()
        engine._connect()
        result["ray_start_s"] = time.perf_counter() - start
        start = time.perf_counter()
        engine.predict(scorer, batch[:scorer.batch_size], lambda rows, values: None)
        result["pool_start_one_batch_s"] = time.perf_counter() - start  # a pool's fixed cost
        start = time.perf_counter()
        with CpuSeconds() as cpu:
            engine.predict(scorer, batch, lambda rows, values: None)
        result["score_s"] = time.perf_counter() - start  # its own pool, started afresh
        engine.close()
    result["score_cpu_s"] = cpu.seconds
    result["driver_peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return result


def estimate(rows: int, local: dict, ray: dict) -> dict:
    """Rows/hour on N nodes of NODE_CORES cores, from the local CPU seconds per row and
    the Ray run's CPU efficiency against it (CPU seconds, unlike wall time, hardly move
    with the load of a shared machine)."""
    core_s_per_row = local["score_cpu_s"] / rows
    efficiency = min(1.0, local["score_cpu_s"] / ray["score_cpu_s"])
    per_node = 3600 / core_s_per_row * NODE_CORES * efficiency
    return {"core_seconds_per_row": round(core_s_per_row, 4), "ray_efficiency": round(
        efficiency, 3), "node_cores": NODE_CORES,
        "rows_per_hour": {str(n): round(per_node * n, -3) for n in NODES}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results-ray.json"))
    parser.add_argument("--part", choices=["local", "ray"])
    args = parser.parse_args()
    if args.part:
        print(json.dumps(part(args.part, args.rows)))
        return
    results = {}
    for name in ("local", "ray"):
        run = subprocess.run([sys.executable, __file__, "--part", name, "--rows",
                              str(args.rows)], capture_output=True, text=True, check=True)
        results[name] = json.loads(run.stdout.strip().splitlines()[-1])
    local, ray = results["local"], results["ray"]
    report = {"rows": args.rows, "cores": os.cpu_count(), "workers": 2,
              "load_average_1min": round(os.getloadavg()[0], 1), **{
                  f"{k}_{n}": round(v, 2) for n, r in results.items() for k, v in r.items()},
              "ray_vs_local_wall": round(ray["score_s"] / local["score_s"], 2),
              "ray_overhead_s": round(ray["score_s"] - local["score_s"], 1),
              "local_rows_per_s": round(args.rows / local["score_s"], 1),
              "ray_rows_per_s": round(args.rows / ray["score_s"], 1),
              "estimate": estimate(args.rows, local, ray)}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
