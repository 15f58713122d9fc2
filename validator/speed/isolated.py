"""Each model scorer measured alone, in a fresh process, as one serving instance sees it.

The harness process holds every scorer of the run (and their tokenisations, caches and
freed arenas), so its memory grows with each scorer loaded and its timings share the
cores with whatever else it keeps alive. Here a fresh ``python -m validator.speed.isolated``
imports only the scorer's runtime and loads its tokenizer, records its resident
memory, loads the scorer from what the run built (the model directory, or the
recipe's ONNX artefact; a torch recipe is re-applied to the reference, which is then
freed and its pages returned), runs one warm batch at the configured batch size and
records the memory again: ``memory_bytes`` is the difference (weights plus runtime
arenas for this model; on a GPU, ``device_memory_bytes`` is the CUDA allocator's peak).
It then runs every shape the timing will see (``warm_up``), times the probe texts at the
configured batch size (throughput: the median of three passes, each bounded by a device
synchronisation, so queued GPU work is counted; tokenising and the forward pass are
also timed apart) and runs the closed-loop load test (validator.speed.capacity) for
``capacity_rps`` at the SLO, whose first level, one client sending each probe text
once, gives the batch-1 latency. CPU and GPU scorers go through the same code: on the
CPU, synchronising is a no-op.

The child reads one JSON request on stdin and writes one JSON answer on stdout.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from validator.errors import ScoringError


def in_fresh_process(module: str, request: dict, what: str) -> dict:
    """``python -m module`` with ``request`` as JSON on its stdin; the JSON of its last
    line of output. ScoringError saying ``what`` timed out or failed."""
    try:
        done = subprocess.run([sys.executable, "-m", module], input=json.dumps(request),
                              capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired as exc:
        raise ScoringError(f"{what} timed out") from exc
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ScoringError(f"{what} failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(spec: dict, texts: list[str], slo_ms: float) -> dict:
    """Run the isolated measurement of the scorer ``spec`` (Scorer.serving_spec) in a
    fresh process; ScoringError if it fails."""
    return in_fresh_process("validator.speed.isolated",
                            {"spec": spec, "texts": texts, "slo_ms": slo_ms},
                            f"measuring {spec['name']!r} alone")


def _rss() -> int:
    import psutil

    gc.collect()
    try:  # hand freed heap pages back, so freed models do not count (glibc only)
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return psutil.Process().memory_info().rss


def import_runtime(spec: dict) -> None:
    """Import the runtime and load the scorer's tokenizer once, so that the memory
    baseline holds the libraries (transformers imports torch lazily, ~200 MB) and only
    the model's weights and arenas are measured above it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: F401

    if spec["backend"] == "onnxruntime":
        import onnxruntime  # noqa: F401
        folder = Path(spec["path"]).parent
    else:
        import torch  # noqa: F401
        folder = Path(spec["path"])
    AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)


def load_serving(spec: dict, scratch: Path):
    """The scorer of ``spec``, loaded from disk as a serving process would load it."""
    if spec["backend"] == "onnxruntime":
        from validator.scorers.onnx_backend import OnnxScorer, load_side_files, open_session

        onnx_file = Path(spec["path"])
        _, tokenizer = load_side_files(onnx_file)
        session = open_session(onnx_file, spec["graph_optimization"], "cpu")
        return OnnxScorer(spec["name"], [], session, tokenizer, None, spec["batch_size"],
                          spec["max_length"], onnx_file, spec["graph_optimization"], "")
    from validator.scorers import RecipeContext, get_recipe, no_progress
    from validator.scorers.transformers_backend import TransformersScorer, load_model_dir

    _, tokenizer, model = load_model_dir(Path(spec["path"]))
    recipe = spec.get("recipe")
    scorer = TransformersScorer(spec["name"], [], model.to(spec["device"]), tokenizer, None,
                                spec["batch_size"], spec["max_length"], path=Path(spec["path"]),
                                device=spec["device"],
                                runtime="eager" if recipe else spec["runtime"])
    if recipe:
        context = RecipeContext(spec["name"], list, scratch, no_progress, spec["runtime"])
        scorer = get_recipe(recipe)(spec["name"], scorer, context)
    return scorer


REPEATS = 3          # timed passes over the probe; the median is reported
SINGLE_WARMUP = 32   # probe texts also sent alone before timing (batch-1 shapes)


def warm_up(scorer, texts: list[str]) -> None:
    """Run every shape the timed passes will see before timing them: the probe twice at
    the batch size (TorchScript's profiling executor specialises a trace on a shape's
    second run; CUDA picks kernels per shape) and some texts alone (the load test's
    first level)."""
    for _ in range(2):
        scorer.serve(texts)
    for text in texts[:SINGLE_WARMUP]:
        scorer.serve([text])
    scorer.synchronize()


def timed(scorer, work) -> float:
    """Seconds ``work()`` takes, the device's queue drained before and after."""
    scorer.synchronize()
    start = time.perf_counter()
    work()
    scorer.synchronize()
    return time.perf_counter() - start


def rates(scorer, texts: list[str]) -> dict:
    """Rows/s of serving the probe (tokenising included), and of its two parts apart:
    tokenising and padding, and the forward pass on prepared batches; medians of
    ``REPEATS`` synchronised passes."""
    batches = scorer.prepare(texts)

    def median_rate(work) -> float:
        return len(texts) / float(np.median([timed(scorer, work) for _ in range(REPEATS)]))

    return {"throughput_rows_per_s": median_rate(lambda: scorer.serve(texts)),
            "tokenize_rows_per_s": median_rate(lambda: scorer.prepare(texts)),
            "forward_rows_per_s": median_rate(lambda: scorer.forward(batches))}


def device_memory(scorer) -> int | None:
    """Peak bytes the CUDA allocator held for this scorer (None on the CPU)."""
    if not str(getattr(scorer, "device", "cpu")).startswith("cuda"):
        return None
    import torch

    return int(torch.cuda.max_memory_allocated(scorer.device))


def _child(request: dict) -> dict:
    from validator.speed.capacity import capacity

    spec, texts = request["spec"], request["texts"]
    import_runtime(spec)
    before = _rss()
    with tempfile.TemporaryDirectory(prefix="slice-validator-isolated-") as scratch:
        scorer = load_serving(spec, Path(scratch))
        scorer.set_threads(os.cpu_count() or 1)
        scorer.serve(texts[:scorer.batch_size])  # the warm batch
        memory = _rss() - before
        warm_up(scorer, texts)
        measured = rates(scorer, texts)
        rps, levels = capacity(scorer.serve, texts, scorer.batch_size, request["slo_ms"])
    single = levels[0]  # one client sending each probe text once: batch-1 latency
    return {"memory_bytes": max(memory, 0), "device_memory_bytes": device_memory(scorer),
            "latency_ms_p50": single.latency_ms_p50,
            "latency_ms_p95": single.latency_ms_p95, "latency_ms_mean": single.latency_ms_mean,
            **measured, "capacity_rps": rps,
            "capacity_levels": [asdict(level) for level in levels]}


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.stdin.read()))))
