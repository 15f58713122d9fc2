"""How fast and how large each scorer is, as one serving instance sees it.

Every model scorer is measured alone in a fresh process (validator.speed.isolated): memory
of that scorer only, batch-1 latency and batch throughput over a seeded probe of gate
rows stratified by the production mix (or by content-slice membership), and capacity
under the SLO from a closed-loop load test (validator.speed.capacity); a measurement is
cached per scorer, probe, SLO and CPU. Each candidate's figures are also given as
ratios against the reference, and, with ``report.instance_memory_gb``, how many
replicas of each scorer fit in one instance's memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from validator.cpu import cpu_facts
from validator.scorers import Scorer

PROBE_ROWS = 200   # latency, throughput and load-test texts: a seeded draw of gate rows
PROBE_METHOD = 4   # in the cache key: 4 = memory outside shared libraries, warmed over
                   # the probe's shapes, synchronised, tokenising and forward timed in
                   # one pass, 1-s load-test levels


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
    load_average_1m: float | None = None  # the machine's, when the measurement began
    tokenize_rows_per_s: float | None = None  # tokenising and padding alone
    forward_rows_per_s: float | None = None   # the forward pass on prepared batches alone
    device_memory_bytes: int | None = None    # CUDA allocator's peak (GPU scorers)


def probe_strata(frame: pd.DataFrame, production_mix,
                 masks: pd.DataFrame | None) -> tuple[pd.Series, dict[str, float], str]:
    """(stratum per gate row, each stratum's share of the probe, what the strata are):
    the production mix's column and shares when given; else each row's membership of
    the content slices (the rows in no slice, in one, in two together, ...), in the
    sample's proportions; else one stratum."""
    if production_mix is not None and production_mix.column in frame.columns:
        labels = frame[production_mix.column].astype(str)
        shares = {str(k): float(v) for k, v in production_mix.shares.items() if v > 0}
        if labels.isin(shares).any():
            return labels, shares, f"the production mix of {production_mix.column}"
    narrow = [] if masks is None else [c for c in masks.columns if not masks[c].all()]
    if narrow:
        member = masks[narrow].to_numpy()
        labels = pd.Series(["+".join(n for n, m in zip(narrow, row) if m) or "(no slice)"
                            for row in member], index=frame.index)
        counts = labels.value_counts(normalize=True)
        return labels, counts.to_dict(), (f"membership of the {len(narrow)} content slices, "
                                          f"in the sample's proportions; no production mix "
                                          f"given")
    labels = pd.Series("all", index=frame.index)
    return labels, {"all": 1.0}, "none (no production mix, no slices)"


def allocate(sizes: dict[str, int], shares: dict[str, float], total: int) -> dict[str, int]:
    """Rows per stratum: ``total`` split by share (largest remainder), none beyond a
    stratum's rows; what a full stratum cannot take goes to the others by share."""
    shares = {k: shares.get(k, 0.0) for k in sizes if shares.get(k, 0.0) > 0 and sizes[k]}
    taken = dict.fromkeys(shares, 0)
    left = min(total, sum(sizes[k] for k in shares))
    while left > 0:
        open_ = {k: v for k, v in shares.items() if taken[k] < sizes[k]}
        weight = sum(open_.values())
        quota = {k: left * v / weight for k, v in open_.items()}
        step = {k: min(int(q), sizes[k] - taken[k]) for k, q in quota.items()}
        if not any(step.values()):  # hand out the remainders, largest first
            best = max(open_, key=lambda k: (quota[k] - int(quota[k]), open_[k], k))
            step = {best: 1}
        for k, n in step.items():
            taken[k] += n
        left -= sum(step.values())
    return taken


def probe_texts(frame: pd.DataFrame, texts: list[str], production_mix, seed: int,
                masks: pd.DataFrame | None = None) -> tuple[list[str], str]:
    """(PROBE_ROWS gate texts, how they were drawn): a seeded draw stratified by the
    production mix when given, else by content-slice membership (``probe_strata``),
    without replacement, in a shuffled order."""
    labels, shares, strata = probe_strata(frame, production_mix, masks)
    rows_of = {k: np.flatnonzero(labels.to_numpy() == k) for k in labels.unique()}
    counts = allocate({k: len(v) for k, v in rows_of.items()}, shares, PROBE_ROWS)
    rng = np.random.default_rng([seed, 0x5EED])
    rows = np.concatenate([rng.choice(rows_of[k], n, replace=False)
                           for k, n in sorted(counts.items())] or [np.array([], int)])
    rows = rng.permutation(rows)
    how = (f"{len(rows)} gate rows drawn (seed {seed}), stratified by {strata} "
           f"({len(counts)} strata)")
    return [texts[i] for i in rows], how


def speed_key(scorer: Scorer, texts: list[str], slo_ms: float) -> str:
    """What a measurement alone depends on: the scorer (its prediction fingerprint holds
    the model, settings, libraries, harness version and the CPU's kernel features), the
    probe texts, the SLO, the CPU model and the cores."""
    cpu = cpu_facts([])
    payload = json.dumps({"scorer": scorer.fingerprint(), "slo_ms": slo_ms,
                          "method": PROBE_METHOD,
                          "texts": hashlib.sha256("\0".join(texts).encode()).hexdigest(),
                          "cpu": cpu["model"], "cores": cpu["cores"]}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _read_json(path: Path | None) -> dict | None:
    try:
        return json.loads(path.read_text("utf-8")) if path is not None else None
    except (OSError, ValueError):  # absent or unreadable: measure again
        return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(value: dict, keys: tuple[str, ...]) -> bool:
    """Whether each of ``keys`` in ``value`` is a number or absent/None."""
    return all(value.get(key) is None or _is_number(value[key]) for key in keys)


def cached_speed(found) -> Speed | None:
    """A cached measurement alone as a Speed, or None (measure again) when it is not one:
    written by another version, edited into other keys or kinds of values. Speed
    figures are informational (no verdict reads them) and their cache is not signed."""
    numbers = tuple(f.name for f in fields(Speed) if f.name != "capacity_levels")
    if not isinstance(found, dict) or set(found) - {f.name for f in fields(Speed)} \
            or not _numbers(found, numbers):
        return None
    levels = found.get("capacity_levels")
    if levels is not None and not (isinstance(levels, list)
                                   and all(isinstance(x, dict) for x in levels)):
        return None
    return Speed(**found)


ROUND_RATIOS = ("throughput_vs_reference", "speedup_vs_reference")


def cached_rounds(found) -> dict | None:
    """Cached interleaved rounds, or None (measure again) when they are not what
    rounds.summarize writes."""
    if not (isinstance(found, dict) and isinstance(found.get("rounds"), int)
            and isinstance(found.get("provisional"), bool)
            and _numbers(found, ("load_average_max", "cores"))
            and all(_is_number(found.get(k)) for k in ROUND_RATIOS)):
        return None
    ranges = [found.get(f"{k}_range") for k in ROUND_RATIOS]
    if not all(isinstance(r, list) and len(r) == 2 and all(map(_is_number, r))
               for r in ranges):
        return None
    return found


def _write_json(path: Path | None, value: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(f".{os.getpid()}.tmp")
    staging.write_text(json.dumps(value), "utf-8")
    staging.replace(path)  # whole or absent, never half written


def probe_enabled() -> bool:
    """Off with ``SLICE_VALIDATOR_SERVING_PROBE=off`` (test suites, to save time)."""
    return os.environ.get("SLICE_VALIDATOR_SERVING_PROBE") != "off"


@dataclass(frozen=True)
class Measurable:
    """What the interleaved rounds need of a scorer after it is gone: how to load it
    again and the key of its measurement."""
    spec: dict
    key: str


def measurable(scorer: Scorer, texts: list[str], slo_ms: float) -> Measurable | None:
    spec = scorer.serving_spec()
    if spec is None or not probe_enabled():
        return None
    return Measurable(spec, speed_key(scorer, texts, slo_ms))


def interleaved_ratios(reference: Measurable, candidates: dict[str, Measurable],
                       processes, cache: Path | None = None) -> dict[str, dict]:
    """Each candidate's throughput and latency ratios against the reference taken in
    interleaved rounds (validator.speed.rounds) by the scorers' own processes
    (``processes``: isolated.ServingProcesses, which starts those not yet up), by name;
    cached per pair unless provisional (a later run on a quieter machine measures
    again)."""
    from validator.speed.rounds import interleaved

    def path(candidate: Measurable) -> Path | None:
        return None if cache is None else \
            cache / f"rounds-{reference.key}-{candidate.key}.json"

    found = {name: cached_rounds(_read_json(path(c))) for name, c in candidates.items()}
    missing = [name for name, value in found.items() if value is None]
    if missing:
        measured = interleaved(processes.of(reference.spec),
                               [processes.of(candidates[name].spec) for name in missing])
        for name, value in zip(missing, measured):
            found[name] = value
            if not value["provisional"]:
                _write_json(path(candidates[name]), value)
    return found


def isolated_speed(scorer: Scorer, processes, slo_ms: float,
                   cache: Path | None = None) -> tuple[Speed, bool]:
    """(the scorer's speed and memory measured alone, whether from ``cache``): Speed()
    for one that cannot be measured, or with ``SLICE_VALIDATOR_SERVING_PROBE=off``, which
    test suites set to save time. Measured by the scorer's own process
    (``processes``: isolated.ServingProcesses over the probe texts), which stays up for
    the interleaved rounds. A measurement is kept in ``cache`` (a folder) under
    ``speed_key``, so a warm re-run of the same scorers on the same machine reuses it."""
    spec = scorer.serving_spec()
    if spec is None or not probe_enabled():
        return Speed(), False
    path = None if cache is None else \
        cache / f"{speed_key(scorer, processes.texts, slo_ms)}.json"
    found = cached_speed(_read_json(path))
    if found is not None:
        return found, True
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    speed = Speed(**processes.of(spec).alone(slo_ms), load_average_1m=load)
    _write_json(path, asdict(speed))
    return speed, False


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


def comparison(reference, candidate) -> str | None:
    """How a candidate's ratios compare: on the same device, or across devices."""
    if reference.device is None or candidate.device is None:
        return None
    if reference.device == candidate.device:
        return f"same device ({candidate.device})"
    return f"cross-device: {candidate.device} vs reference on {reference.device}"


def add_ratios(infos: list, rounds: dict[str, dict] | None = None) -> None:
    """Each candidate's speedup (latency), throughput, size, memory and capacity against
    the reference (``infos[0]``), set on the candidates' ScorerInfo. Speedup and
    throughput come from the interleaved ``rounds`` where taken (validator.speed.rounds),
    else from the separate measurements; a ratio is provisional when a load average it
    rests on exceeded the cores."""
    reference = infos[0]
    cores = os.cpu_count() or 1
    for info in infos[1:]:
        info.speedup_vs_reference = _ratio(reference.latency_ms_p50, info.latency_ms_p50)
        info.throughput_vs_reference = _ratio(info.throughput_rows_per_s,
                                              reference.throughput_rows_per_s)
        info.size_vs_reference = _ratio(info.size_bytes, reference.size_bytes)
        info.memory_vs_reference = _ratio(info.memory_bytes, reference.memory_bytes)
        info.capacity_vs_reference = _ratio(info.capacity_rps, reference.capacity_rps)
        info.comparison = comparison(reference, info)
        loads = [x for x in (reference.load_average_1m, info.load_average_1m) if x is not None]
        found = (rounds or {}).get(info.name)
        if found is not None:
            info.speedup_vs_reference = found["speedup_vs_reference"]
            info.throughput_vs_reference = found["throughput_vs_reference"]
            info.speedup_vs_reference_range = found["speedup_vs_reference_range"]
            info.throughput_vs_reference_range = found["throughput_vs_reference_range"]
            info.ratio_rounds = found["rounds"]
            loads += [found["load_average_max"]] if found["load_average_max"] is not None else []
        info.ratio_load_average_max = max(loads) if loads else None
        info.ratio_provisional = bool(loads) and max(loads) > cores


def add_replicas(infos: list, instance_memory_gb: float | None) -> None:
    """Replicas of each scorer that fit in one instance's memory, and the capacity they
    give if each replica sustains its measured capacity (a memory-bound instance)."""
    if instance_memory_gb is None:
        return
    for info in infos:
        if info.memory_bytes and info.capacity_rps is not None:
            info.replicas_in_memory = int(instance_memory_gb * 1e9 // info.memory_bytes)
            info.memory_bound_capacity_rps = info.replicas_in_memory * info.capacity_rps
