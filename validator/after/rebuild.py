"""Rebuild a finished run's reference and one recipe candidate, to try layer variants.

``validator diagnose`` and ``validator repair`` re-quantize the candidate with some
layers kept in fp32 (the recipe's ``exclude``) and score chosen gate rows with it,
through the prediction cache. The run's config (``summary.json``'s ``config.source``)
and sample are read again; a sample whose sha256 differs from the run's is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from validator.cache import PredictionCache, cache_root
from validator.config import Config, ScorerConfig, default_config, load_config
from validator.after.recommend import load_run
from validator.record.run_dir import RunDir
from validator.errors import ValidatorError, choices_error
from validator.plan import check_config
from validator.data.sample import Sample, load_sample
from validator.scorers import RECIPES, ProgressFactory, Scorer, no_progress, recipes_that
from validator.scorers.layers import Layer, onnx_layers, torch_layers
from validator.scoring import build_scorer, score_cached

DEFAULT_SOURCE = "<default config>"


def run_config(run: RunDir) -> Config:
    source = run.record.config.source
    if source == DEFAULT_SOURCE:
        return default_config()
    if not Path(source).is_file():
        raise ValidatorError(f"{source}: the run's config file is gone; diagnose and repair "
                             f"rebuild the candidate from it")
    return load_config(Path(source))


@dataclass
class Workbench:
    run: RunDir
    config: Config
    sample: Sample
    spec: ScorerConfig              # the candidate's config
    reference: Scorer
    progress: ProgressFactory = no_progress
    cache: PredictionCache = field(default_factory=lambda: PredictionCache(cache_root()))

    @property
    def recipe(self) -> str:
        return self.spec.recipe

    def variant(self, exclude: list[str], name: str | None = None) -> Scorer:
        """The candidate rebuilt with these layers kept in fp32."""
        spec = self.spec.model_copy(update={"exclude": list(exclude) or None,
                                            "name": name or self.spec.name})
        return build_scorer(spec, self.config, self.reference, self.sample,
                            cache_root() / "artefacts", self.progress)

    def layers(self) -> list[Layer]:
        """Every layer the recipe can keep in fp32 (of the fp32 graph, for ONNX)."""
        if RECIPES[self.recipe].runtime == "onnxruntime":
            return onnx_layers(self.fp32_graph())
        return torch_layers(self.reference.model)

    def fp32_graph(self) -> Path:
        """The fp32 ONNX graph the candidate's recipe quantizes (from the artefact cache):
        the unfused export for static quantization, the fused graph for dynamic."""
        from validator.scorers import RecipeContext
        from validator.scorers.onnx_recipes import fp32_artefact, unfused_artefact

        context = RecipeContext(self.spec.key, lambda: [],  # exporting needs no rows
                                cache_root() / "artefacts", self.progress)
        # static (calibrated) quantization starts from the unfused export
        source = unfused_artefact if RECIPES[self.recipe].calibrates else fp32_artefact
        return source(self.reference, context) / "model.onnx"

    def texts(self, rows: np.ndarray) -> list[str]:
        return self.run.table.loc[rows, "text"].astype(str).tolist()

    def predict(self, scorer: Scorer, rows: np.ndarray, cached: bool = True) -> np.ndarray:
        """Predictions on the given gate rows: through the prediction cache (keyed by
        the scorer's fingerprint), or, with ``cached=False``, scored afresh as one set.
        Dynamic INT8 quantizes activations per batch, so predictions of a row depend on
        the rows batched with it: variants compared on a subset of rows are scored
        afresh on exactly that subset, never mixed with what a run cached."""
        values, _, _ = score_cached(scorer, self.texts(rows), self.progress,
                                    self.cache if cached else None)
        return values


def check_candidate(run: RunDir, candidate: str) -> None:
    if candidate not in run.model_candidates:
        known = run.model_candidates
        raise ValidatorError(f"--candidate: {choices_error('candidate', candidate, known)}")


def candidate_spec(run: RunDir, config: Config, candidate: str) -> ScorerConfig:
    spec = next((c for c in config.candidates if c.name == candidate), None)
    if spec is None or spec.recipe not in RECIPES or not RECIPES[spec.recipe].accepts_exclude:
        made = [c.name for c in config.candidates
                if c.recipe in RECIPES and RECIPES[c.recipe].accepts_exclude]
        raise ValidatorError(f"--candidate: {candidate!r} is not made by a recipe that can "
                             f"keep layers in fp32 ({', '.join(recipes_that('accepts_exclude'))}); "
                             f"candidates that are: {', '.join(made) or 'none'}")
    return spec


def open_workbench(run_dir: Path, candidate: str,
                   progress: ProgressFactory = no_progress) -> Workbench:
    run = load_run(run_dir)
    check_candidate(run, candidate)
    if "text" not in run.table.columns:
        raise ValidatorError(f"{run_dir / 'predictions.parquet'}: missing column 'text'")
    config = run_config(run)
    spec = candidate_spec(run, config, candidate)
    check_config(config)
    sample = load_sample(config)
    if sample.sha256 != run.record.sample.sha256:
        raise ValidatorError(f"{sample.path}: the sample changed since the run (sha256 "
                             f"{sample.sha256[:12]}, the run's {run.record.sample.sha256[:12]})")
    reference = build_scorer(config.reference, config, None, sample,
                             cache_root() / "artefacts", progress)
    return Workbench(run, config, sample, spec, reference, progress)
