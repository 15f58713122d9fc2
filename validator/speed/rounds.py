"""Like with like: a candidate's speed ratios taken in interleaved rounds with the reference.

Each scorer's figures measured alone (validator.speed.isolated) come from separate
processes at separate moments, so a ratio of two of them also compares the machine's
load at two moments (on a shared 2-core machine a cold run once reported 3.74x where
idle runs give about 2x). Here one fresh process loads the reference and one candidate
as serving would (``isolated.load_serving``), warms both over the probe's shapes, then times
them in ``ROUNDS`` rounds, reference then candidate in each: the probe at the batch size
(throughput) and ``LATENCY_TEXTS`` probe texts one at a time (batch-1 latency, median).
A round's ratio compares two timings taken seconds apart; the ratio reported is the
median over rounds, with the lowest and highest round beside it. One process times
every candidate of a run in turn against the one reference it loaded. The 1-minute load
average is read at each round: when its highest exceeds the cores, the ratio is
**provisional** (the scorers shared the cores with other work, which moves a ratio
even when both feel it).

The child reads one JSON request on stdin and writes one JSON answer on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from validator.speed.isolated import import_runtime, in_fresh_process, load_serving, warm_up

ROUNDS = 5
LATENCY_TEXTS = 16


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def interleaved(reference, candidate, texts: list[str], rounds: int = ROUNDS,
                clock: Callable[[], float] = time.perf_counter,
                load: Callable[[], float | None] = load_average) -> dict:
    """Per-round ratios of two warmed scorers (anything with ``serve`` and
    ``synchronize``), reference then candidate in each round, and their summary."""
    throughput, speedup, loads = [], [], []

    def seconds(scorer, work) -> float:
        scorer.synchronize()
        start = clock()
        work()
        scorer.synchronize()
        return clock() - start

    def latency(scorer) -> float:
        return float(np.median([seconds(scorer, lambda t=t: scorer.serve([t]))
                                for t in texts[:LATENCY_TEXTS]]))

    for _ in range(rounds):
        loads.append(load())
        ref_pass, ref_latency = seconds(reference, lambda: reference.serve(texts)), \
            latency(reference)
        cand_pass, cand_latency = seconds(candidate, lambda: candidate.serve(texts)), \
            latency(candidate)
        throughput.append(ref_pass / cand_pass)
        speedup.append(ref_latency / cand_latency)
    return summarize(throughput, speedup, loads)


def summarize(throughput: list[float], speedup: list[float],
              loads: list[float | None], cores: int | None = None) -> dict:
    """Median and range of the per-round ratios; provisional when the load passed the
    cores in any round."""
    cores = cores or os.cpu_count() or 1
    known = [x for x in loads if x is not None]
    peak = max(known) if known else None
    return {"rounds": len(throughput),
            "throughput_vs_reference": float(np.median(throughput)),
            "throughput_vs_reference_range": [float(min(throughput)), float(max(throughput))],
            "speedup_vs_reference": float(np.median(speedup)),
            "speedup_vs_reference_range": [float(min(speedup)), float(max(speedup))],
            "load_average_max": peak, "cores": cores,
            "provisional": peak is not None and peak > cores}


def measure_rounds(reference_spec: dict, candidate_specs: list[dict],
                   texts: list[str]) -> list[dict]:
    """The interleaved rounds of each candidate against the reference (Scorer.serving_spec
    each), in one fresh process; ScoringError if it fails."""
    names = ", ".join(repr(spec["name"]) for spec in candidate_specs)
    return in_fresh_process("validator.speed.rounds",
                            {"reference": reference_spec, "candidates": candidate_specs,
                             "texts": texts}, f"timing {names} against the reference")


def _loaded(spec: dict, scratch: Path, texts: list[str]):
    import_runtime(spec)
    scorer = load_serving(spec, scratch)
    scorer.set_threads(os.cpu_count() or 1)
    warm_up(scorer, texts)
    return scorer


def _child(request: dict) -> list[dict]:
    texts, out = request["texts"], []
    with tempfile.TemporaryDirectory(prefix="slice-validator-rounds-") as scratch:
        reference = _loaded(request["reference"], Path(scratch), texts)
        for spec in request["candidates"]:
            candidate = _loaded(spec, Path(scratch), texts)
            out.append(interleaved(reference, candidate, texts))
            del candidate  # one candidate in memory at a time
    return out

if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.stdin.read()))))
