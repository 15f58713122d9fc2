"""Build the reference and candidate scorers, score the gate rows, profile each scorer.

Predictions hold one raw score per gate row, scorer and dimension, plus what each
scorer is (backend, recipe record, size) and its speed profile: batch-1 latency over a
fixed probe of sample texts, throughput at the configured batch size over a fixed
probe, peak resident memory while it scored, and ratios against the reference.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from validator.cache import PredictionCache, cache_root, row_keys
from validator.config import Config, ScorerConfig
from validator.errors import ScoringError
from validator.sample import Sample, select_rows
from validator.scorers import (ProgressFactory, RecipeContext, Scorer, get_backend,
                               get_recipe, no_progress)

LATENCY_TEXTS = 32      # batch-1 latency probe: the first gate rows, one at a time
THROUGHPUT_ROWS = 256   # throughput probe: the first gate rows at the batch size


@dataclass
class ScorerInfo:
    name: str
    role: str  # reference | candidate
    backend: str
    runtime: str | None  # torch models: eager | torchscript
    recipe: dict | None
    fingerprint: str | None
    size_bytes: int | None
    parameter_bytes: int | None
    peak_rss_bytes: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    throughput_rows_per_s: float | None
    scoring_seconds: float
    rows_scored: int
    rows_from_cache: int
    speedup_vs_reference: float | None = None      # reference p50 latency / this one's
    throughput_vs_reference: float | None = None   # this throughput / reference's
    size_vs_reference: float | None = None         # this size on disk / reference's
    traffic: dict[str, float] | None = None        # share of traffic per model scorer


@dataclass
class Predictions:
    frame: pd.DataFrame               # index: id; columns "{scorer}:{dimension}"
    scorers: list[ScorerInfo] = field(default_factory=list)

    def of(self, scorer: str, dimensions: list[str]) -> np.ndarray:
        return self.frame[[f"{scorer}:{d}" for d in dimensions]].to_numpy()


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


def calibration_texts(sample: Sample, scorer_config: ScorerConfig, config: Config) -> list[str]:
    spec = scorer_config.calibration
    label = f"{config.source}: {scorer_config.key}.calibration.where"
    rows = select_rows(sample.source, spec.where, label)
    if len(rows) > spec.rows:
        rows = rows.sample(n=spec.rows, random_state=config.seed).sort_index(kind="stable")
    return rows[sample.text_column].tolist()


def build_scorer(scorer_config: ScorerConfig, config: Config, reference: Scorer | None,
                 sample: Sample, artefact_dir: Path, progress: ProgressFactory) -> Scorer:
    """The scorer of a planned config (backend and recipe names are checked)."""
    if scorer_config.from_ is None:
        return get_backend(scorer_config.backend)(scorer_config, list(config.rubric.dimensions))
    recipe = get_recipe(scorer_config.recipe)
    context = RecipeContext(scorer_config.key,
                            lambda: calibration_texts(sample, scorer_config, config),
                            artefact_dir, progress, scorer_config.runtime)
    return recipe(scorer_config.name, reference, context)


def check_finite(values: np.ndarray, scorer: str, sample: Sample) -> None:
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        ids = sample.ids[bad][:5].tolist()
        raise ScoringError(f"scorer {scorer!r} produced NaN or infinite predictions for "
                           f"{int(bad.sum())} rows (first ids: {', '.join(map(str, ids))})")


def score_cached(scorer: Scorer, sample: Sample, progress: ProgressFactory, tokens,
                 cache: PredictionCache | None) -> tuple[np.ndarray, int]:
    """Predictions for every gate row: each distinct text is scored once, and only
    when the cache lacks it. Returns (values, rows served from the cache)."""
    fingerprint = scorer.fingerprint()
    if fingerprint is None:
        return scorer.score(sample, progress, tokens), 0
    codes, texts = pd.factorize(pd.Series(sample.texts, dtype=object))
    texts = list(texts)
    keys = row_keys(texts)
    width = len(scorer.dimensions)
    if cache is None:
        values, found = np.full((len(texts), width), np.nan), np.zeros(len(texts), dtype=bool)
    else:
        values, found = cache.lookup(fingerprint, keys, width)
    missing = np.flatnonzero(~found)
    if len(missing):
        writer = cache.writer(fingerprint) if cache is not None else None
        checkpoint = None if writer is None else \
            (lambda rows, v: writer.add(keys[missing[rows]], v))
        encodings = tokens.encode(scorer, [texts[i] for i in missing])
        with progress(f"scoring {scorer.name}", len(missing)) as advance:
            values[missing] = scorer.forward(encodings, advance, on_batch=checkpoint)
        if writer is not None:
            writer.flush()
    return values[codes], int(found[codes].sum())


def speed_probe(scorer: Scorer, texts: list[str]) -> tuple[float | None, ...]:
    """(latency p50 ms, latency p95 ms, throughput rows/s) on fixed probes."""
    if scorer.score_texts(texts[:1]) is None:  # also a warm-up
        return None, None, None
    timings = []
    for text in texts[:LATENCY_TEXTS]:
        start = time.perf_counter()
        scorer.score_texts([text])
        timings.append((time.perf_counter() - start) * 1000)
    probe = texts[:THROUGHPUT_ROWS]
    start = time.perf_counter()
    scorer.score_texts(probe)
    throughput = len(probe) / (time.perf_counter() - start)
    return float(np.percentile(timings, 50)), float(np.percentile(timings, 95)), throughput


def profile_and_score(scorer: Scorer, role: str, sample: Sample, progress: ProgressFactory,
                      tokens, cache: PredictionCache | None) -> tuple[np.ndarray, ScorerInfo]:
    with PeakRss() as memory:
        start = time.perf_counter()
        values, from_cache = score_cached(scorer, sample, progress, tokens, cache)
        seconds = time.perf_counter() - start
        p50, p95, throughput = speed_probe(scorer, sample.texts)
    if values.shape != (len(sample.frame), len(scorer.dimensions)):
        raise ScoringError(f"scorer {scorer.name!r} returned shape {values.shape}, expected "
                           f"{(len(sample.frame), len(scorer.dimensions))}")
    check_finite(values, scorer.name, sample)
    info = ScorerInfo(scorer.name, role, scorer.backend, scorer.runtime, scorer.recipe,
                      scorer.fingerprint(), scorer.size_bytes(), scorer.parameter_bytes(),
                      memory.peak, p50, p95, throughput, seconds, len(values) - from_cache,
                      from_cache)
    return values, info


def _ratio(numerator, denominator) -> float | None:
    return numerator / denominator if numerator and denominator else None


def add_ratios(infos: list[ScorerInfo]) -> None:
    reference = infos[0]
    for info in infos[1:]:
        info.speedup_vs_reference = _ratio(reference.latency_ms_p50, info.latency_ms_p50)
        info.throughput_vs_reference = _ratio(info.throughput_rows_per_s,
                                              reference.throughput_rows_per_s)
        info.size_vs_reference = _ratio(info.size_bytes, reference.size_bytes)


def add_routed(config: Config, sample: Sample, routers: dict, columns: dict,
               infos: list[ScorerInfo]) -> None:
    """Routed candidates: each row takes the routed-to scorer's prediction (no
    re-scoring); speed figures are the traffic-weighted mix (validator.decide.mix)."""
    from dataclasses import asdict

    from validator.decide.mix import mix_speed, row_weights, traffic
    from validator.routing import resolve_rows

    weights = row_weights(sample.frame, config.sample.production_mix)
    columns["traffic_weight"] = weights
    for info in infos:
        info.traffic = {info.name: 1.0}
    measured = {info.name: asdict(info) for info in infos}
    for name, router in routers.items():
        choice = resolve_rows(routers, name, sample.frame)
        for dimension in config.rubric.dimensions:
            picked = np.empty(len(choice))
            for target in set(choice):
                rows = choice == target
                picked[rows] = columns[f"{target}:{dimension}"][rows]
            columns[f"{name}:{dimension}"] = picked
        columns[f"route:{name}"] = choice.astype(str)
        shares = traffic(choice, weights)
        speed = mix_speed(shares, measured)
        infos.append(ScorerInfo(name, "candidate", "route", None,
                                {"name": "route", "rules": router.to_dict()["rules"]},
                                None, speed["size_bytes"], speed["parameter_bytes"],
                                speed["peak_rss_bytes"], speed["latency_ms_p50"],
                                speed["latency_ms_p95"], speed["throughput_rows_per_s"],
                                0.0, 0, 0, traffic=shares))


def score_sample(config: Config, sample: Sample, progress: ProgressFactory = no_progress,
                 use_cache: bool = True, routers: dict | None = None) -> Predictions:
    from validator.scorers.batched import TokenCache

    cache = PredictionCache(cache_root()) if use_cache else None
    with tempfile.TemporaryDirectory(prefix="slice-validator-") as scratch:
        artefacts = cache_root() / "artefacts" if use_cache else Path(scratch)
        tokens, columns, infos = TokenCache(), {}, []
        reference = None
        for scorer_config in (s for s in config.scorers if s.route is None):
            scorer = build_scorer(scorer_config, config, reference, sample, artefacts, progress)
            reference = reference or scorer
            role = "reference" if scorer is reference else "candidate"
            values, info = profile_and_score(scorer, role, sample, progress, tokens, cache)
            infos.append(info)
            for j, dimension in enumerate(scorer.dimensions):
                columns[f"{scorer.name}:{dimension}"] = values[:, j]
    add_routed(config, sample, routers or {}, columns, infos)
    add_ratios(infos)
    return Predictions(pd.DataFrame(columns, index=sample.ids), infos)
