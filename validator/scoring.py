"""Build the reference and candidate scorers and score the gate rows through the cache.

Predictions hold one raw score per gate row, scorer and dimension, plus what each
scorer is (backend, recipe record, size) and its speed profile (profile.py). A model
scorer predicts each distinct text once, and only when the prediction cache lacks it;
a ``columns`` scorer's predictions are read from the sample.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from validator.cache import PredictionCache, cache_root, row_keys
from validator.cache_check import lookup, say_unsigned, verify
from validator.config import Config, ScorerConfig
from validator.engine import Predict, local_predict, open_engine
from validator.errors import ConfigError, ScoringError
from validator.speed.profile import (PeakRss, Speed, add_ratios, add_replicas,
                                     interleaved_ratios, isolated_speed, measurable,
                                     probe_enabled, probe_texts)
from validator.data.sample import Sample, select_rows
from validator.scorers import (ProgressFactory, RecipeContext, Scorer, get_backend,
                               get_recipe, no_progress)
from validator.routing import resolve_rows
from validator.scorers.columns_backend import ColumnPredictions
from validator.speed.isolated import ServingProcesses, start_forkserver
from validator.speed.mix import mix_speed, row_weights, traffic


@dataclass(kw_only=True)
class ScorerInfo:
    """What a scorer is and how fast it ran; also its record in summary.json
    (``scorers[]``, validator.record.schema derives it). A key added here is added to
    the file."""
    name: str
    role: Literal["reference", "candidate"]
    backend: str
    runtime: str | None  # torch models: eager | torchscript
    recipe: dict[str, Any] | None  # what the recipe did, or None for a loaded scorer
    fingerprint: str | None
    size_bytes: int | None
    parameter_bytes: int | None
    peak_rss_bytes: int  # the harness process's peak while this scorer scored the rows
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
    memory_bytes: int | None = None                # alone (validator.speed.isolated)
    memory_vs_reference: float | None = None
    latency_ms_mean: float | None = None
    capacity_rps: float | None = None              # requests/s within report.slo_ms (p95)
    capacity_vs_reference: float | None = None
    capacity_levels: list[dict[str, float]] | None = None  # the load test's levels
    replicas_in_memory: int | None = None          # in report.instance_memory_gb
    memory_bound_capacity_rps: float | None = None  # replicas x capacity
    build_seconds: float | None = None             # loading, exporting, quantizing
    score_seconds: float | None = None             # scoring the gate rows (= scoring_seconds)
    speed_from_cache: bool = False                 # measured alone by an earlier run
    load_average_1m: float | None = None           # the machine's when measured alone
    cache_check: dict | None = None                # validator.cache_check (record.CacheCheck)
    tokenize_rows_per_s: float | None = None       # tokenising and padding alone
    forward_rows_per_s: float | None = None        # the forward pass alone
    device_memory_bytes: int | None = None         # CUDA allocator's peak (GPU scorers)
    device: str | None = None                      # "cpu" or "cuda <device name>"
    dtype: str | None = None                       # its weights: float32, bfloat16, int8...
    comparison: str | None = None                  # same device, or cross-device (ratios)
    ratio_rounds: int | None = None                # interleaved rounds (validator.speed.rounds)
    speedup_vs_reference_range: list[float] | None = None     # lowest, highest round
    throughput_vs_reference_range: list[float] | None = None
    ratio_load_average_max: float | None = None    # highest load a ratio rests on
    ratio_provisional: bool = False                # that load exceeded the cores


@dataclass
class Predictions:
    frame: pd.DataFrame               # index: id; columns "{scorer}:{dimension}"
    scorers: list[ScorerInfo] = field(default_factory=list)
    probe: "Probe | None" = None      # the texts each model scorer was measured on

    def of(self, scorer: str, dimensions: list[str]) -> np.ndarray:
        return self.frame[[f"{scorer}:{d}" for d in dimensions]].to_numpy()


def calibration_texts(sample: Sample, scorer_config: ScorerConfig, config: Config) -> list[str]:
    spec = scorer_config.calibration
    label = f"{config.source}: {scorer_config.key}.calibration.where"
    rows = select_rows(sample.source, spec.where, label)
    if len(rows) > spec.rows:
        rows = rows.sample(n=spec.rows, random_state=config.seed).sort_index(kind="stable")
    return rows[sample.text_column].tolist()


def build_scorer(scorer_config: ScorerConfig, config: Config, reference: Scorer | None,
                 sample: Sample, artefact_dir: Path,
                 progress: ProgressFactory) -> Scorer | ColumnPredictions:
    """The scorer of a planned config (backend and recipe names are checked)."""
    if scorer_config.from_ is None:
        return get_backend(scorer_config.backend)(scorer_config, list(config.rubric.dimensions),
                                                  config.rubric.scale)
    recipe = get_recipe(scorer_config.recipe)
    context = RecipeContext(scorer_config.key,
                            lambda: calibration_texts(sample, scorer_config, config),
                            artefact_dir, progress, scorer_config.runtime,
                            tuple(scorer_config.exclude or ()))
    try:
        return recipe(scorer_config.name, reference, context)
    except ConfigError as exc:  # e.g. an ``exclude`` entry naming no layer of the model
        raise ConfigError(f"{config.source}: {exc}") from exc


def check_finite(values: np.ndarray, scorer: str, sample: Sample) -> None:
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        ids = sample.ids[bad][:5].tolist()
        raise ScoringError(f"scorer {scorer!r} produced NaN or infinite predictions for "
                           f"{int(bad.sum())} rows (first ids: {', '.join(map(str, ids))})")


def score_cached(scorer: Scorer, texts: list[str], progress: ProgressFactory,
                 cache: PredictionCache | None,
                 predict: Predict = local_predict) -> tuple[np.ndarray, int, dict | None]:
    """Predictions for every text: each distinct text is predicted once, and only when
    the cache lacks it, by ``predict`` (the engine: here or on Ray). Cached rows are
    verified first (validator.cache_check). Returns (values, rows served from the
    cache, the cache check's record or None when nothing came from the cache)."""
    codes, distinct = pd.factorize(pd.Series(texts, dtype=object))
    distinct = list(distinct)
    keys = row_keys(distinct)
    fingerprint = scorer.fingerprint() if cache is not None else None
    check = None
    if fingerprint is None:
        values = np.full((len(distinct), len(scorer.dimensions)), np.nan)
        found = np.zeros(len(distinct), dtype=bool)
    else:
        cached = lookup(cache, fingerprint, keys, len(scorer.dimensions))
        say_unsigned(cache, fingerprint, scorer.name)
        if cached.batches:
            with progress(f"checking {scorer.name}'s cache", 1) as advance:
                check = verify(scorer, distinct, cached, predict, fingerprint, cache)
                advance(1)
        values, found = cached.values, cached.found
    missing = np.flatnonzero(~found)
    if len(missing):
        writer = cache.writer(fingerprint) if fingerprint is not None else None
        with progress(f"scoring {scorer.name}", len(missing)) as advance:
            def done(rows: np.ndarray, batch: np.ndarray) -> None:
                if writer is not None:
                    writer.add(keys[missing[rows]], batch)
                advance(len(rows))

            values[missing] = predict(scorer, [distinct[i] for i in missing], done)
        if writer is not None:
            writer.flush()
    return values[codes], int(found[codes].sum()), check


IDENTITY = ("runtime", "recipe", "fingerprint", "size_bytes", "parameter_bytes", "device",
            "dtype")


def identity(scorer: Scorer | ColumnPredictions) -> dict:
    """What a scorer is, for ScorerInfo (all None for ready predictions)."""
    if not isinstance(scorer, Scorer):
        return dict.fromkeys(IDENTITY)
    return dict(zip(IDENTITY, (scorer.runtime, scorer.recipe, scorer.fingerprint(),
                               scorer.size_bytes(), scorer.parameter_bytes(),
                               scorer.device_label(), scorer.compute_dtype())))


@dataclass(frozen=True)
class Probe:
    """The seeded gate texts each model scorer is measured on alone, and the SLO."""
    texts: list[str]
    slo_ms: float
    how: str = ""  # how the texts were drawn


def predictions_of(scorer: Scorer | ColumnPredictions, role: str, sample: Sample,
                   progress: ProgressFactory, cache: PredictionCache | None,
                   probe: Probe, processes: ServingProcesses,
                   predict: Predict = local_predict) -> tuple[np.ndarray, ScorerInfo]:
    """The scorer's predictions for the gate rows (through the execution engine's
    ``predict``) and its ScorerInfo (models measured alone in a fresh process of their
    own, from ``processes``; the harness's peak memory while scoring)."""
    speed, speed_cached = Speed(), False
    with PeakRss() as memory:
        start = time.perf_counter()
        if isinstance(scorer, Scorer):
            values, from_cache, check = score_cached(scorer, sample.texts, progress, cache,
                                                     predict)
        else:
            with progress(f"reading {scorer.name}", len(sample.frame)) as advance:
                values, from_cache, check = scorer.read(sample), 0, None
                advance(len(values))
        seconds = time.perf_counter() - start
    if isinstance(scorer, Scorer):
        with progress(f"measuring {scorer.name} alone", 1) as advance:
            speed, speed_cached = isolated_speed(
                scorer, processes, probe.slo_ms,
                None if cache is None else cache.root.parent / "speed")
            advance(1)
    if values.shape != (len(sample.frame), len(scorer.dimensions)):
        raise ScoringError(f"scorer {scorer.name!r} returned shape {values.shape}, expected "
                           f"{(len(sample.frame), len(scorer.dimensions))}")
    check_finite(values, scorer.name, sample)
    info = ScorerInfo(name=scorer.name, role=role, backend=scorer.backend,
                      **identity(scorer), peak_rss_bytes=memory.peak, **asdict(speed),
                      scoring_seconds=seconds, rows_scored=len(values) - from_cache,
                      rows_from_cache=from_cache, score_seconds=seconds,
                      speed_from_cache=speed_cached, cache_check=check)
    return values, info


def ratio_rounds(serving: dict, infos: list[ScorerInfo], processes: ServingProcesses,
                 progress: ProgressFactory, cache: Path | None) -> dict[str, dict]:
    """Each model candidate timed against the reference in interleaved rounds
    (validator.speed.rounds) by the scorers' own processes, by candidate name."""
    reference = serving.get(infos[0].name)
    candidates = {info.name: serving[info.name] for info in infos[1:]
                  if serving.get(info.name) is not None}
    if reference is None or not candidates:
        return {}
    with progress(f"timing {', '.join(candidates)} against {infos[0].name}", 1) as advance:
        found = interleaved_ratios(reference, candidates, processes, cache)
        advance(1)
    return found


def add_routed(config: Config, sample: Sample, routers: dict, columns: dict,
               infos: list[ScorerInfo]) -> None:
    """Routed candidates: each row takes the routed-to scorer's prediction (no
    re-scoring); speed figures are the traffic-weighted mix (validator.speed.mix)."""
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
        infos.append(ScorerInfo(
            name=name, role="candidate", backend="route", runtime=None,
            recipe={"name": "route", "rules": router.to_dict()["rules"]}, fingerprint=None,
            size_bytes=speed["size_bytes"], parameter_bytes=speed["parameter_bytes"],
            peak_rss_bytes=speed["peak_rss_bytes"], latency_ms_p50=speed["latency_ms_p50"],
            latency_ms_p95=speed["latency_ms_p95"],
            throughput_rows_per_s=speed["throughput_rows_per_s"], scoring_seconds=0.0,
            rows_scored=0, rows_from_cache=0, traffic=shares,
            memory_bytes=speed["memory_bytes"], capacity_rps=speed["capacity_rps"]))


def prepare_measuring(config: Config) -> None:
    """Where a model scorer will be measured alone, start the forkserver its process is
    forked from now, so it imports the runtimes while the run reads its inputs."""
    if probe_enabled() and any(s.route is None and s.backend != "columns"
                               for s in config.scorers):
        start_forkserver()


def score_sample(config: Config, sample: Sample, progress: ProgressFactory = no_progress,
                 use_cache: bool = True, routers: dict | None = None,
                 masks: pd.DataFrame | None = None) -> Predictions:
    """Every scorer's predictions and figures; ``masks`` (the slices) stratify the speed
    probe when no production mix is given."""
    cache = PredictionCache(cache_root()) if use_cache else None
    texts, drawn = probe_texts(sample.frame, sample.texts, config.sample.production_mix,
                               config.seed, masks)
    probe = Probe(texts, config.report.slo_ms, drawn)
    with tempfile.TemporaryDirectory(prefix="slice-validator-") as scratch, \
            open_engine(config) as predict, ServingProcesses(texts) as processes:
        artefacts = cache_root() / "artefacts" if use_cache else Path(scratch)
        columns, infos, serving = {}, [], {}
        reference = None
        for scorer_config in (s for s in config.scorers if s.route is None):
            start = time.perf_counter()
            scorer = build_scorer(scorer_config, config, reference, sample, artefacts, progress)
            built = time.perf_counter() - start
            reference = reference or scorer
            role = "reference" if scorer is reference else "candidate"
            values, info = predictions_of(scorer, role, sample, progress, cache, probe,
                                          processes, predict)
            info.build_seconds = built if isinstance(scorer, Scorer) else None
            infos.append(info)
            if isinstance(scorer, Scorer):
                serving[scorer.name] = measurable(scorer, texts, probe.slo_ms)
            for j, dimension in enumerate(scorer.dimensions):
                columns[f"{scorer.name}:{dimension}"] = values[:, j]
        rounds = ratio_rounds(serving, infos, processes, progress,
                              None if cache is None else cache.root.parent / "speed")
    add_routed(config, sample, routers or {}, columns, infos)
    add_ratios(infos, rounds)
    add_replicas(infos, config.report.instance_memory_gb)
    return Predictions(pd.DataFrame(columns, index=sample.ids), infos, probe)
