"""The default gate on a GPU with bf16, fp16 and torchao INT8 candidates (issue 25).

The embedded default config with the reference on ``device: cuda`` (traced, as the
default serves it) and the GPU recipes as candidates, run through ``validator run``;
prints each scorer's device, dtype, throughput, capacity and ratios from summary.json.
With ``--random-from DIR`` the reference is random weights of the architecture in DIR
(for machines without the encoder package: verdicts then mean nothing, speed does).

python benchmarks/gpu_gate.py OUT_DIR [--model default | --random-from DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

from validator.assets import asset

CANDIDATES = [{"name": "bf16", "from": "reference", "recipe": "torch-bf16"},
              {"name": "fp16", "from": "reference", "recipe": "torch-fp16"},
              {"name": "int8-gpu", "from": "reference", "recipe": "torchao-int8-dynamic"}]
SHOWN = ("device", "dtype", "runtime", "throughput_rows_per_s", "tokenize_rows_per_s",
         "forward_rows_per_s", "latency_ms_p50", "capacity_rps", "throughput_vs_reference",
         "speedup_vs_reference", "capacity_vs_reference", "comparison")


def gate_config(out: Path, model: str) -> Path:
    config = yaml.safe_load(asset("default.yaml").read_text("utf-8"))
    config["sample"]["path"] = str(asset(config["sample"]["path"]))
    config["slices"] = [str(asset(s)) for s in config["slices"]]
    config["reference"].update(model=model, device="cuda")
    config["candidates"] = CANDIDATES
    config["report"] = {"out": str(out / "reports")}
    path = out / "gate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", default="default")
    parser.add_argument("--random-from", default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = args.model
    if args.random_from:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_gpu import random_model_dir
        model = str(random_model_dir(Path(args.random_from), args.out / "random-model"))
    run_dir = args.out / "gate-run"
    done = subprocess.run([sys.executable, "-m", "validator", "run", "--config",
                           str(gate_config(args.out, model)), "--out", str(run_dir),
                           "--force", "--quiet"], text=True, capture_output=True)
    print("exit", done.returncode, done.stderr.strip()[-2000:])
    summary = json.loads((run_dir / "summary.json").read_text("utf-8"))
    figures = {s["name"]: {k: s.get(k) for k in SHOWN} for s in summary["scorers"]}
    (args.out / "gate-figures.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    sys.exit(0 if done.returncode in (0, 1) else done.returncode)


if __name__ == "__main__":
    main()
