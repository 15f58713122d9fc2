"""Scoring benchmarks on the shipped sample's gate rows (see benchmarks/README.md).

(a) harness scoring vs a bare loop of forward passes over the same padded batches;
(b) harness vs a naive per-row loop over the same rows (the distinct gate texts the
    harness scores), in the same runtime: the traced reference called once per row
    against the traced harness, and a transformers pipeline (eager) against the harness
    running the same model eagerly;
(c) a re-run with only the candidate changed vs the first run (whole gate, each run in a
    fresh process); the one-time assembly of the default scorer into the cache is timed
    on its own and left out of both runs;
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
from validator.data.sample import load_sample
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


def naive_pipeline(reference, texts: list[str]) -> float:
    """A transformers pipeline called once per row: runs the model eagerly."""
    from transformers import pipeline

    scorer = pipeline("text-classification", model=reference.model,
                      tokenizer=reference.tokenizer, function_to_apply="none", top_k=None,
                      device="cpu")
    start = time.perf_counter()
    for text in texts:
        scorer(text, truncation=True, max_length=reference.max_length)
    return time.perf_counter() - start


def naive_traced(reference, texts: list[str]) -> float:
    """The harness's own (traced) forward function called once per row, tokenising each
    row on its own: no batching, no length sorting."""
    tokenizer = reference.tokenizer
    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    with torch.inference_mode():
        for text in texts:
            ids = tokenizer(text, truncation=True, max_length=reference.max_length)["input_ids"]
            inputs = tokenizer.pad({"input_ids": [ids]}, return_tensors="pt")  # as the harness
            reference.run_model(dict(inputs))
    return time.perf_counter() - start


def config_with(candidates: list[dict]):
    return parse_config({**DEFAULT_CONFIG, "candidates": candidates}, "<benchmark>",
                        DEFAULT_CONFIG_FILE.parent)


def rerun_config():
    return config_with([{"name": "int8", "from": "reference", "recipe": "torch-int8-dynamic"}])


def assemble_default_scorer() -> dict:
    """The one-time assembly of the default scorer into the (fresh) cache."""
    from validator.scorers.default_model import default_model_dir

    seconds, _ = timed(default_model_dir)
    return {"assembly_s": seconds}


def one_run(out: Path) -> dict:
    """One whole gate run (sample, expectations, scorers built and traced, scoring through
    the cache, statistics, outputs) in this process."""
    seconds, summary = timed(lambda: run_gate(rerun_config(), out))
    return {"wall_s": seconds, "candidate_fingerprint": summary.scorers[1].fingerprint,
            "scoring_s": sum(s.scoring_seconds for s in summary.scorers),
            "rows_scored": sum(s.rows_scored for s in summary.scorers)}


def cached_rerun(out: Path) -> dict:
    """(c): a first run and a re-run with only the candidate changed, each in a fresh
    process (both pay the same imports, model loading, tracing and quantization) over a
    fresh cache into which the default scorer was assembled beforehand."""
    cache = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    env = {"SLICE_VALIDATOR_CACHE": str(cache)}
    try:
        assembly = run_isolated("c_assemble", env=env)
        first = run_isolated("c_run", env=env, run_dir=out / "first")
        # the candidate changed: its cached predictions are gone, the reference's are not
        shutil.rmtree(cache / "predictions" / first["candidate_fingerprint"])
        second = run_isolated("c_run", env=env, run_dir=out / "second")
    finally:
        shutil.rmtree(cache)
    return {"assembly_s": assembly["assembly_s"], "first_run_s": first["wall_s"],
            "rerun_candidate_changed_s": second["wall_s"],
            "ratio": second["wall_s"] / first["wall_s"],
            "ratio_with_assembly_in_first_run": second["wall_s"]
            / (first["wall_s"] + assembly["assembly_s"]),
            "first_scoring_s": first["scoring_s"], "rerun_scoring_s": second["scoring_s"],
            "first_rows_scored": first["rows_scored"],
            "rerun_rows_scored": second["rows_scored"]}


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


def eager_twin(config, sample, scratch: Path):
    """The reference model run eagerly (same weights, same tokenizer)."""
    eager = config.reference.model_copy(update={"runtime": "eager"})
    return build_scorer(eager, config, None, sample, scratch, no_progress)


def harness_floor_naive(repeats: int = 2) -> dict:
    """(a) and (b): the harness and its baselines timed alternately, the faster of each
    kept (this machine's timings vary by about 10% from minute to minute)."""
    config = default_config()
    sample = load_sample(config)
    with tempfile.TemporaryDirectory() as scratch:
        reference = build_scorer(config.reference, config, None, sample, Path(scratch),
                                 no_progress)
        eager = eager_twin(config, sample, Path(scratch))
        distinct = list(dict.fromkeys(sample.texts))  # the rows the harness scores
        for scorer in (reference, eager):
            scorer.predict(distinct[:64])  # warm-up
        times = {"harness": [], "floor": [], "harness_eager": []}
        for _ in range(repeats):
            for key, scorer in (("harness", reference), ("harness_eager", eager)):
                scorer.tokens = TokenCache()  # tokenisation is part of the harness's time
                times[key].append(timed(lambda: score_cached(scorer, sample.texts,
                                                             no_progress, None))[0])
            times["floor"].append(bare_floor(reference, distinct))
        traced_loop = naive_traced(reference, distinct)
        pipeline_loop = naive_pipeline(eager, distinct)
    harness, floor, harness_eager = (min(times[k]) for k in ("harness", "floor",
                                                               "harness_eager"))
    return {"rows": len(sample.texts), "distinct_rows": len(distinct),
            "cores": os.cpu_count(), "reference_runtime": reference.runtime,
            "a_harness_s": harness, "a_floor_s": floor, "a_ratio": harness / floor,
            "b_naive_traced_per_row_s": traced_loop, "b_speedup": traced_loop / harness,
            "b_eager_harness_s": harness_eager,
            "b_naive_pipeline_per_row_s": pipeline_loop,
            "b_eager_speedup": pipeline_loop / harness_eager}


def in_scratch(part):
    def run() -> dict | list:
        with tempfile.TemporaryDirectory() as scratch:
            return part(Path(scratch))
    return run


PARTS = {"a_b": harness_floor_naive, "c_cached_rerun": in_scratch(cached_rerun),
         "c_assemble": assemble_default_scorer, "d_recipes": in_scratch(recipes)}


def run_isolated(part: str, env: dict | None = None,
                 run_dir: Path | None = None) -> dict | list:
    """One part in a fresh process, so that no part's models, threads or garbage slow
    another's timings."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "part.json"
        extra = ["--run-dir", str(run_dir)] if run_dir is not None else []
        subprocess.run([sys.executable, __file__, "--part", part, "--out", str(out), *extra],
                       check=True, env={**os.environ, **(env or {})})
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results-scoring.json"))
    parser.add_argument("--part", choices=[*PARTS, "c_run"],
                        help="run one part in this process")
    parser.add_argument("--run-dir", type=Path, help="output folder of part c_run")
    args = parser.parse_args()
    if args.part == "c_run":
        results = one_run(args.run_dir)
    elif args.part:
        results = PARTS[args.part]()
    else:
        results = run_isolated("a_b")
        for part in ("c_cached_rerun", "d_recipes"):
            results[part] = run_isolated(part)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
