"""Capacity: the highest request rate one instance sustains within a latency SLO.

A closed-loop load test: ``clients`` threads each send one text, wait for its answer
and send the next, for a fixed window (one client sends every text once instead: that
level is the batch-1 latency probe). The server is the scorer as it would serve: one
worker takes whatever requests are queued (up to the batch size) as one micro-batch,
tokenises, pads and runs it. Requests are serialised by design: the one worker runs
one micro-batch at a time (on a GPU, on the default CUDA stream), as one model
instance serves them, so clients never contend for the device or its threads; they
only enqueue and wait. Concurrency doubles from 1 until the p95 latency leaves
the SLO, or two doublings in a row gain less than 5% over the best level before them (a
CPU already saturated by one or two requests at a time only queues more), or, once
there are as many clients as the batch size, throughput stops growing, or there are
four full batches of clients; the capacity is the best throughput of a level
whose p95 met the SLO (0 when even one client at a time misses it).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

LEVEL_SECONDS = 1.0   # each concurrency level runs this long (plus in-flight requests)
BATCHES_QUEUED = 4    # at most this many full batches of clients: beyond, they only queue
GAIN = 1.05           # a level "gains" when 5% faster than the best before it


@dataclass(frozen=True)
class Level:
    clients: int
    requests: int
    throughput_rps: float
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_mean: float


class MicroBatcher:
    """One worker thread serving queued requests in batches of up to ``batch_size``."""

    def __init__(self, serve: Callable[[list[str]], object], batch_size: int):
        self.serve, self.batch_size = serve, batch_size
        self.requests: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            batch = [self.requests.get()]
            if batch[0] is None:
                return
            while len(batch) < self.batch_size:
                try:
                    batch.append(self.requests.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is None for item in batch)
            batch = [item for item in batch if item is not None]
            self.serve([text for text, _ in batch])
            for _, done in batch:
                done.set()
            if stop:
                return

    def request(self, text: str) -> None:
        done = threading.Event()
        self.requests.put((text, done))
        done.wait()

    def close(self) -> None:
        self.requests.put(None)
        self._thread.join()


def run_level(server: MicroBatcher, texts: list[str], clients: int,
              seconds: float = LEVEL_SECONDS, requests: int = 0) -> Level:
    """``clients`` closed-loop clients for ``seconds`` and at least ``requests``
    requests; texts taken in order, cycling."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(10 ** 9))
    start = time.perf_counter()
    deadline = start + seconds

    def client() -> None:
        while True:
            with lock:
                sent_so_far = next(counter)
                if sent_so_far >= requests and time.perf_counter() >= deadline:
                    return
                text = texts[sent_so_far % len(texts)]
            sent = time.perf_counter()
            server.request(text)
            with lock:
                latencies.append(time.perf_counter() - sent)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    milliseconds = np.array(latencies) * 1000
    return Level(clients, len(latencies), len(latencies) / elapsed,
                 float(np.percentile(milliseconds, 50)), float(np.percentile(milliseconds, 95)),
                 float(milliseconds.mean()))


def capacity(serve: Callable[[list[str]], object], texts: list[str], batch_size: int,
             slo_ms: float, seconds: float = LEVEL_SECONDS) -> tuple[float, list[Level]]:
    """(capacity in requests/s under the SLO, every level run). The first level, one
    client, sends each text once: it is the batch-1 latency probe."""
    server = MicroBatcher(serve, batch_size)
    levels: list[Level] = []
    try:
        clients = 1
        while clients <= BATCHES_QUEUED * batch_size:
            level = run_level(server, texts, clients, 0.0, len(texts)) if clients == 1 \
                else run_level(server, texts, clients, seconds, clients)
            levels.append(level)
            met = [lv.throughput_rps for lv in levels if lv.latency_ms_p95 <= slo_ms]
            flat = len(met) >= 3 and max(met[-2:]) < GAIN * max(met[:-2])
            if level.latency_ms_p95 > slo_ms or flat or (
                    clients >= batch_size and len(met) >= 2 and met[-1] < GAIN * max(met[:-1])):
                break  # past the SLO, or no faster with more clients: they only queue
            clients *= 2
    finally:
        server.close()
    met = [lv.throughput_rps for lv in levels if lv.latency_ms_p95 <= slo_ms]
    return (max(met) if met else 0.0), levels
