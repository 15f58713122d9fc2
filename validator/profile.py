"""How fast and how large each scorer is, as one serving instance sees it.

Every model scorer is measured alone in a fresh process (validator.isolated): memory
of that scorer only, batch-1 latency and batch throughput over a seeded probe of gate
rows drawn in the production mix, and capacity under the SLO from a closed-loop load
test (validator.capacity). Each candidate's figures are also given as ratios against
the reference, and, with ``report.instance_memory_gb``, how many replicas of each
scorer fit in one instance's memory.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from validator.scorers import Scorer

PROBE_ROWS = 256   # latency, throughput and load-test texts: a seeded draw of gate rows


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
    memory_bytes: int | None = None
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    latency_ms_mean: float | None = None
    throughput_rows_per_s: float | None = None
    capacity_rps: float | None = None
    capacity_levels: list[dict] | None = None


def probe_texts(frame, texts: list[str], production_mix, seed: int) -> tuple[list[str], str]:
    """(PROBE_ROWS gate texts drawn without replacement, how they were drawn): each row
    weighted so the draw matches ``sample.production_mix`` when given, else uniformly."""
    from validator.decide.mix import row_weights

    weights = row_weights(frame, production_mix)
    size = min(PROBE_ROWS, int(np.count_nonzero(weights)))
    rng = np.random.default_rng([seed, 0x5EED])
    rows = rng.choice(len(texts), size=size, replace=False, p=weights)
    how = (f"{size} gate rows drawn (seed {seed}) in the production mix of "
           f"{production_mix.column}" if production_mix is not None and
           production_mix.column in frame.columns else
           f"{size} gate rows drawn uniformly (seed {seed}); no production mix given")
    return [texts[i] for i in rows], how


def isolated_speed(scorer: Scorer, texts: list[str], slo_ms: float) -> Speed:
    """The scorer's speed and memory measured alone (Speed() for one that cannot be, or
    with ``SLICE_VALIDATOR_SERVING_PROBE=off``, which test suites set to save time)."""
    from validator.isolated import measure

    spec = scorer.serving_spec()
    if spec is None or os.environ.get("SLICE_VALIDATOR_SERVING_PROBE") == "off":
        return Speed()
    return Speed(**measure(spec, texts, slo_ms))


def inprocess_latency_p50(scorer: Scorer, texts: list[str], probes: int = 32) -> float:
    """Median batch-1 latency (ms) over the first ``probes`` texts, in this process: a
    quick comparison of variants of one scorer (``validator repair``'s steps), not the
    serving figures of ``isolated_speed``."""
    scorer.predict(texts[:1])  # warm-up
    timings = []
    for text in texts[:probes]:
        start = time.perf_counter()
        scorer.predict([text])
        timings.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(timings, 50))


def _ratio(numerator, denominator) -> float | None:
    return numerator / denominator if numerator and denominator else None


def add_ratios(infos: list) -> None:
    """Each candidate's speedup (latency), throughput, size, memory and capacity against
    the reference (``infos[0]``), set on the candidates' ScorerInfo."""
    reference = infos[0]
    for info in infos[1:]:
        info.speedup_vs_reference = _ratio(reference.latency_ms_p50, info.latency_ms_p50)
        info.throughput_vs_reference = _ratio(info.throughput_rows_per_s,
                                              reference.throughput_rows_per_s)
        info.size_vs_reference = _ratio(info.size_bytes, reference.size_bytes)
        info.memory_vs_reference = _ratio(info.memory_bytes, reference.memory_bytes)
        info.capacity_vs_reference = _ratio(info.capacity_rps, reference.capacity_rps)


def add_replicas(infos: list, instance_memory_gb: float | None) -> None:
    """Replicas of each scorer that fit in one instance's memory, and the capacity they
    give if each replica sustains its measured capacity (a memory-bound instance)."""
    if instance_memory_gb is None:
        return
    for info in infos:
        if info.memory_bytes and info.capacity_rps is not None:
            info.replicas_in_memory = int(instance_memory_gb * 1e9 // info.memory_bytes)
            info.memory_bound_capacity_rps = info.replicas_in_memory * info.capacity_rps
