"""Like with like: a candidate's speed ratios taken in interleaved rounds with the reference.

Each scorer's figures measured alone (validator.speed.isolated) come from separate
processes at separate moments, so a ratio of two of them also compares the machine's
load at two moments (on a shared 2-core machine a cold run once reported 3.74x where
idle runs give about 2x). Here the scorers' own processes (``isolated.ScorerProcess``,
loaded and warmed over the probe's shapes when they were measured alone, or for the
rounds) are asked for their timings in ``ROUNDS`` rounds: in each, the reference, then
every candidate (their order turned by one each round, so none is always the furthest
from the reference's timing): the probe at the batch size (throughput) and a few probe
texts one at a time (batch-1 latency, median; ``isolated.round_timings``). One process
works at a time. A round's ratio compares a candidate's timing with the reference's of
the same round, seconds apart; the ratio reported is the median over rounds, with the
lowest and highest round beside it. The reference is timed once a round for all
candidates. The 1-minute load average is read at each round: when its highest exceeds
the cores, the ratio is **provisional** (the scorers shared the cores with other work,
which moves a ratio even when both feel it).
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

ROUNDS = 3


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def interleaved(reference, candidates: list, rounds: int = ROUNDS,
                load: Callable[[], float | None] = load_average) -> list[dict]:
    """Per-round ratios against the reference of scorers that time themselves
    (``timings()``: a round's probe seconds and batch-1 latency), the reference first in
    each round and the candidates' order turned by one each round, and their summary
    per candidate (in the given order)."""
    throughput = [[] for _ in candidates]
    speedup = [[] for _ in candidates]
    loads = []
    for number in range(rounds):
        loads.append(load())
        ref_pass, ref_latency = reference.timings()
        for index in np.roll(np.arange(len(candidates)), -number):
            cand_pass, cand_latency = candidates[index].timings()
            throughput[index].append(ref_pass / cand_pass)
            speedup[index].append(ref_latency / cand_latency)
    return [summarize(t, u, loads) for t, u in zip(throughput, speedup)]


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
