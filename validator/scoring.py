"""Build the reference and candidate scorers and score the gate rows with each.

Predictions hold one raw score per gate row, scorer and dimension, plus what each
scorer is (backend, recipe, size) and how fast it ran.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from validator.config import Config, ScorerConfig
from validator.errors import ConfigError, ScoringError
from validator.sample import Sample
from validator.scorers import ProgressFactory, Scorer, get_backend, get_recipe, no_progress

LATENCY_TEXTS = 32  # fixed probe: the first gate rows, scored one at a time


@dataclass
class ScorerInfo:
    name: str
    role: str  # reference | candidate
    backend: str
    recipe: dict | None
    size_bytes: int | None
    seconds: float
    throughput_rows_per_s: float
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    peak_rss_bytes: int = 0


@dataclass
class Predictions:
    frame: pd.DataFrame               # index: id; columns "{scorer}:{dimension}"
    scorers: list[ScorerInfo] = field(default_factory=list)

    def of(self, scorer: str, dimensions: list[str]) -> np.ndarray:
        return self.frame[[f"{scorer}:{d}" for d in dimensions]].to_numpy()


def build_scorer(scorer_config: ScorerConfig, dimensions: list[str],
                 reference: Scorer | None, source: str) -> Scorer:
    try:
        if scorer_config.from_ is not None:
            return get_recipe(scorer_config.recipe)(scorer_config.name, reference)
        return get_backend(scorer_config.backend)(scorer_config, dimensions)
    except KeyError as exc:
        field_name = "recipe" if scorer_config.from_ is not None else "backend"
        raise ConfigError(f"{source}: {scorer_config.key}.{field_name}: {exc.args[0]}") from exc


def latency_ms(scorer: Scorer, texts: list[str]) -> tuple[float, float] | tuple[None, None]:
    if scorer.score_texts(texts[:1]) is None:
        return None, None
    timings = []
    for text in texts:
        start = time.perf_counter()
        scorer.score_texts([text])
        timings.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(timings, 50)), float(np.percentile(timings, 95))


def check_finite(values: np.ndarray, scorer: str, sample: Sample) -> None:
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        ids = sample.ids[bad][:5].tolist()
        raise ScoringError(f"scorer {scorer!r} produced NaN or infinite predictions for "
                           f"{int(bad.sum())} rows (first ids: {', '.join(map(str, ids))})")


def score_one(scorer: Scorer, role: str, sample: Sample,
              progress: ProgressFactory) -> tuple[np.ndarray, ScorerInfo]:
    start = time.perf_counter()
    values = scorer.score(sample, progress)
    seconds = time.perf_counter() - start
    if values.shape != (len(sample.frame), len(scorer.dimensions)):
        raise ScoringError(f"scorer {scorer.name!r} returned shape {values.shape}, expected "
                           f"{(len(sample.frame), len(scorer.dimensions))}")
    check_finite(values, scorer.name, sample)
    p50, p95 = latency_ms(scorer, sample.texts[:LATENCY_TEXTS])
    info = ScorerInfo(scorer.name, role, scorer.backend, scorer.recipe, scorer.size_bytes(),
                      seconds, len(values) / seconds if seconds > 0 else float("inf"),
                      p50, p95, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return values, info


def score_sample(config: Config, sample: Sample,
                 progress: ProgressFactory = no_progress) -> Predictions:
    dimensions = list(config.rubric.dimensions)
    reference = build_scorer(config.reference, dimensions, None, config.source)
    columns, infos = {}, []
    for scorer_config in config.scorers:
        scorer = reference if scorer_config is config.reference else \
            build_scorer(scorer_config, dimensions, reference, config.source)
        role = "reference" if scorer is reference else "candidate"
        values, info = score_one(scorer, role, sample, progress)
        infos.append(info)
        for j, dimension in enumerate(dimensions):
            columns[f"{scorer.name}:{dimension}"] = values[:, j]
    return Predictions(pd.DataFrame(columns, index=sample.ids), infos)
