"""How fast and how large each scorer is: latency, throughput, peak memory, ratios.

Batch-1 latency over a fixed probe of gate texts, throughput at the configured batch
size over a fixed probe, peak resident memory of the process while a scorer is built,
run and probed, and each candidate's ratios against the reference.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from validator.scorers import Scorer

LATENCY_TEXTS = 32      # batch-1 latency probe: the first gate rows, one at a time
THROUGHPUT_ROWS = 256   # throughput probe: the first gate rows at the batch size


class PeakRss:
    """Samples this process's resident memory in a thread; ``peak`` after exit."""

    def __init__(self, interval: float = 0.02):
        import psutil

        self.process, self.interval = psutil.Process(), interval
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRss":
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


@dataclass(frozen=True)
class Speed:
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    throughput_rows_per_s: float | None = None


def speed_probe(scorer: Scorer, texts: list[str]) -> Speed:
    """Latency (p50, p95 ms) at batch 1 and throughput (rows/s) on fixed probes."""
    scorer.predict(texts[:1])  # warm-up
    timings = []
    for text in texts[:LATENCY_TEXTS]:
        start = time.perf_counter()
        scorer.predict([text])
        timings.append((time.perf_counter() - start) * 1000)
    probe = texts[:THROUGHPUT_ROWS]
    start = time.perf_counter()
    scorer.predict(probe)
    throughput = len(probe) / (time.perf_counter() - start)
    return Speed(float(np.percentile(timings, 50)), float(np.percentile(timings, 95)),
                 throughput)


def _ratio(numerator, denominator) -> float | None:
    return numerator / denominator if numerator and denominator else None


def add_ratios(infos: list) -> None:
    """Each candidate's speedup (latency), throughput and size against the reference
    (``infos[0]``), set on the candidates' ScorerInfo."""
    reference = infos[0]
    for info in infos[1:]:
        info.speedup_vs_reference = _ratio(reference.latency_ms_p50, info.latency_ms_p50)
        info.throughput_vs_reference = _ratio(info.throughput_rows_per_s,
                                              reference.throughput_rows_per_s)
        info.size_vs_reference = _ratio(info.size_bytes, reference.size_bytes)
