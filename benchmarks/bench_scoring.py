"""Scoring benchmarks on the shipped sample's gate rows (see benchmarks/README.md).

(a) harness scoring vs a bare loop of forward passes over the same padded batches;
(b) harness vs a naive per-row transformers pipeline loop;
(c) a re-run with only the candidate changed vs the first run (whole gate);
(d) every recipe's latency, throughput and size against fp32, with the torch models run
    both as frozen TorchScript traces (the default reference's runtime) and eagerly.

Each part runs in a fresh process. Usage:
python benchmarks/bench_scoring.py [--out benchmarks/results-scoring.json] [--part NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from validator.config import (DEFAULT_CONFIG, DEFAULT_CONFIG_FILE, default_config,
                              parse_config)
from validator.pipeline import run_gate
from validator.sample import load_sample
from validator.scorers.batched import TokenCache, padded_batches
from validator.scorers import no_progress
from validator.scoring import build_scorer, score_cached

TORCH_RECIPES = ["torch-int8-dynamic", "torch-bf16"]
ONNX_RECIPES = ["onnx-fp32", "onnx-int8-dynamic", "onnx-int8-static"]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bare_floor(reference, texts: list[str]) -> float:
    """Forward passes alone over the harness's own batches, tokenised beforehand."""
    batches = [{k: torch.from_numpy(v) for k, v in batch.items()} for _, batch
               in padded_batches(reference.tokenizer, reference.encode(texts), 32)]
    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            reference.run_model(batch)
    return time.perf_counter() - start


def naive_per_row(reference, texts: list[str]) -> float:
    from transformers import pipeline

    scorer = pipeline("text-classification", model=reference.model,
                      tokenizer=reference.tokenizer, function_to_apply="none", top_k=None,
                      device="cpu")
    start = time.perf_counter()
    for text in texts:
        scorer(text, truncation=True, max_length=reference.max_length)
    return time.perf_counter() - start


def config_with(candidates: list[dict]):
    return parse_config({**DEFAULT_CONFIG, "candidates": candidates}, "<benchmark>",
                        DEFAULT_CONFIG_FILE.parent)


def cached_rerun(out: Path) -> dict:
    cache = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    os.environ["SLICE_VALIDATOR_CACHE"] = str(cache)
    config = config_with([{"name": "int8", "from": "reference",
                           "recipe": "torch-int8-dynamic"}])
    first, summary = timed(lambda: run_gate(config, out / "first"))
    # the candidate changed: its cached predictions are gone, the reference's are not
    shutil.rmtree(cache / "predictions" / summary.scorers[1].fingerprint)
    second, _ = timed(lambda: run_gate(config, out / "second"))
    shutil.rmtree(cache)
    del os.environ["SLICE_VALIDATOR_CACHE"]
    return {"first_run_s": first, "rerun_candidate_changed_s": second,
            "ratio": second / first}


def recipe_candidates() -> list[dict]:
    """Every recipe against the (TorchScript) reference, plus the eager forms of the
    torch models, so that each torch recipe also has an eager fp32 baseline."""
    eager_fp32 = {**DEFAULT_CONFIG["reference"], "name": "fp32-eager", "runtime": "eager"}
    torch_recipes = [{"name": r, "from": "reference", "recipe": r} for r in TORCH_RECIPES]
    eager = [{**c, "name": f"{c['name']}-eager", "runtime": "eager"} for c in torch_recipes]
    onnx = [{"name": r, "from": "reference", "recipe": r} for r in ONNX_RECIPES]
    return [*torch_recipes, eager_fp32, *eager, *onnx]


def same_runtime_speedup(rows: list[dict]) -> None:
    """Each torch row's batch-1 speedup over the fp32 model run the same way."""
    fp32 = {row["runtime"]: row["latency_ms_p50"] for row in rows
            if row["name"] in ("fp32", "fp32-eager")}
    for row in rows:
        baseline = fp32.get(row["runtime"])
        row["speedup_vs_fp32_same_runtime"] = (baseline / row["latency_ms_p50"]
                                               if baseline and row["latency_ms_p50"] else None)


def recipes(out: Path) -> list[dict]:
    config = config_with(recipe_candidates())
    summary = run_gate(config, out / "recipes", use_cache=False)
    metrics = {m.scorer: m.value for m in summary.metrics
               if m.slice == "all" and m.dimension == "_all" and m.metric == "exact_agreement"}
    keys = ["name", "runtime", "size_bytes", "latency_ms_p50", "latency_ms_p95",
            "throughput_rows_per_s", "speedup_vs_reference", "throughput_vs_reference",
            "size_vs_reference"]
    rows = [{**{k: s[k] for k in keys}, "size_reduction": 1 / s["size_vs_reference"]
             if s["size_vs_reference"] else None, "exact_agreement": metrics[s["name"]]}
            for s in summary.model_dump()["scorers"]]
    same_runtime_speedup(rows)
    return rows


def harness_floor_naive(repeats: int = 2) -> dict:
    """(a) and (b): the harness and the floor timed alternately, the faster of each kept
    (this machine's timings vary by about 10% from minute to minute)."""
    config = default_config()
    sample = load_sample(config)
    with tempfile.TemporaryDirectory() as scratch:
        reference = build_scorer(config.reference, config, None, sample, Path(scratch),
                                 no_progress)
        texts = sample.texts
        reference.predict(texts[:64])  # warm-up
        harness, floor = [], []
        for _ in range(repeats):
            reference.tokens = TokenCache()  # tokenisation is part of the harness's time
            harness.append(timed(lambda: score_cached(reference, texts, no_progress,
                                                      None))[0])
            floor.append(bare_floor(reference, list(dict.fromkeys(texts))))
        naive = naive_per_row(reference, texts)
    return {"rows": len(texts), "cores": os.cpu_count(), "a_harness_s": min(harness),
            "a_floor_s": min(floor), "a_ratio": min(harness) / min(floor),
            "b_naive_per_row_s": naive, "b_speedup": naive / min(harness)}


def in_scratch(part):
    def run() -> dict | list:
        with tempfile.TemporaryDirectory() as scratch:
            return part(Path(scratch))
    return run


PARTS = {"a_b": harness_floor_naive, "c_cached_rerun": in_scratch(cached_rerun),
         "d_recipes": in_scratch(recipes)}


def run_isolated(part: str) -> dict | list:
    """One part in a fresh process, so that no part's models, threads or garbage slow
    another's timings."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "part.json"
        subprocess.run([sys.executable, __file__, "--part", part, "--out", str(out)],
                       check=True)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results-scoring.json"))
    parser.add_argument("--part", choices=list(PARTS), help="run one part in this process")
    args = parser.parse_args()
    if args.part:
        results = PARTS[args.part]()
    else:
        results = run_isolated("a_b")
        for part in ("c_cached_rerun", "d_recipes"):
            results[part] = run_isolated(part)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
