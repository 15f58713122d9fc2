"""Plan before work: validate everything that needs no scoring, then hand it on.

    config (metric, backends, recipes, runtime rules, model files, execution engine)
      -> slice files -> overrides against the slice names
      -> sample (read, great-expectations, gate rows) -> calibration rows
      -> slice conditions on the sample's columns
      -> Plan

Model checks are cheap: files exist, safetensors headers and ONNX graphs read, output
counts and ``id2label`` match the rubric; no weights are loaded. A bad config therefore
exits 2 before any prediction is computed or cached, and each error names the config
file and the key path (``gate.yaml: candidates[1].recipe: unknown recipe ...``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from validator.config import Config, ScorerConfig
from validator.engine import check_execution
from validator.errors import ConfigError, ModelError, choices_error
from validator.metrics import METRICS, Metric
from validator.routing import build_routers
from validator.data.sample import Sample, load_sample, select_rows
from validator.scorers import BACKENDS, RECIPES, recipes_that
from validator.data.slices import SliceSet, assign_slices, load_slices

TORCH_BACKEND = "transformers"  # the backend every recipe starts from
MIN_CALIBRATION_ROWS = 100
# The widest max_drop allowed without gate.allow_wide_max_drop, as a share of the metric's
# range: 25 points of agreement, 0.5 of kappa or Spearman, 1 rating point of MAE on 1-5.
# A drop that large takes a good scorer to a useless one (kappa 0.8 -> 0.3), so such a
# threshold is almost always a unit mistake (docs/thresholds.md).
WIDE_SHARE = 0.25
INSPECTORS = {  # backend -> its cheap model check (path, dimensions)
    "transformers": "validator.scorers.transformers_backend:inspect_model_dir",
    "onnxruntime": "validator.scorers.onnx_backend:inspect_onnx",
}


@dataclass(frozen=True)
class Plan:
    """What the stages after the config need, all validated."""
    slices: SliceSet
    sample: Sample
    masks: pd.DataFrame  # gate rows x slices, booleans
    routers: dict  # routed candidate name -> Router (its rules checked against the slices)
    warnings: tuple[str, ...] = ()  # for the terminal, summary.json and the report


def check_scorer(scorer: ScorerConfig, config: Config) -> None:
    where = f"{config.source}: {scorer.key}"
    if scorer.route is not None:
        return  # a route's rules are checked against the slices (build_routers)
    if scorer.from_ is None:
        if scorer.backend not in BACKENDS:
            raise ConfigError(f"{where}.backend: "
                              f"{choices_error('backend', scorer.backend, BACKENDS)}")
        return
    if scorer.recipe not in RECIPES:
        raise ConfigError(f"{where}.recipe: {choices_error('recipe', scorer.recipe, RECIPES)}")
    recipe = RECIPES[scorer.recipe]
    if scorer.exclude is not None and not recipe.accepts_exclude:
        raise ConfigError(f"{where}.exclude: applies to the recipes "
                          f"{', '.join(recipes_that('accepts_exclude'))}, not {scorer.recipe!r}")
    if recipe.runtime == "onnxruntime" and scorer.runtime is not None:
        raise ConfigError(f"{where}.runtime: applies to torch models; recipe {scorer.recipe!r} "
                          f"makes an ONNX Runtime model (set graph_optimization instead)")
    if scorer.runtime == "torchscript" and not recipe.traceable:
        raise ConfigError(f"{where}.runtime: recipe {scorer.recipe!r} runs eager only "
                          f"(its quantized tensors cannot be traced); use runtime: eager")
    if config.reference.backend != TORCH_BACKEND:
        raise ConfigError(f"{where}.recipe: recipe {scorer.recipe!r} needs a reference with "
                          f"backend {TORCH_BACKEND!r}, got {config.reference.backend!r}")


def check_model(scorer: ScorerConfig, config: Config) -> None:
    """Cheap checks of a loaded scorer's model files (recipes are built from the reference)."""
    if scorer.backend not in INSPECTORS:
        return
    dimensions = list(config.rubric.dimensions)
    try:
        if scorer.model == "default" and scorer.backend == TORCH_BACKEND:
            from validator.scorers.default_model import head_files
            head_files()
            return
        module, attribute = INSPECTORS[scorer.backend].split(":")
        getattr(importlib.import_module(module), attribute)(Path(scorer.model), dimensions,
                                                            scorer, config.rubric.scale)
    except ModelError as exc:
        raise ModelError(f"{config.source}: {scorer.key}.model: {exc}") from exc
    except ConfigError as exc:  # an ``outputs`` mapping that does not fit the model
        raise ConfigError(f"{config.source}: {exc}") from exc


def thresholds(config: Config) -> list[tuple[str, float, Metric]]:
    """(key path, value, metric) of every threshold of the config, in the metric's unit."""
    gate = config.gate
    metric = METRICS[gate.metric]
    found = [("gate.max_drop", gate.max_drop, metric)]
    found += [(f"gate.overrides[{i}].max_drop", o.max_drop, metric)
              for i, o in enumerate(gate.overrides)]
    if metric.guard is not None and gate.guard_max_drop is not None:
        found.append(("gate.guard_max_drop", gate.guard_max_drop, METRICS[metric.guard]))
    return found


def check_thresholds(config: Config) -> None:
    """A max_drop wider than WIDE_SHARE of its metric's range is refused: written in the
    wrong unit (points for a correlation), it would pass almost any candidate."""
    if config.gate.allow_wide_max_drop:
        return
    scale = config.rubric.scale
    for key, value, metric in thresholds(config):
        low, high = metric.range_on(scale)
        if value > WIDE_SHARE * (high - low):
            raise ConfigError(
                f"{config.source}: {key}: {value:g} is wider than {WIDE_SHARE:.0%} of "
                f"{metric.name}'s range [{low:g}, {high:g}] ({metric.unit}); a sane value "
                f"is e.g. {metric.max_drop:g} (its default); set gate.allow_wide_max_drop: "
                f"true to keep it")


def check_config(config: Config) -> None:
    """Everything about the config itself: registries, thresholds, runtime rules, model
    files."""
    if config.gate.metric not in METRICS:
        raise ConfigError(f"{config.source}: gate.metric: "
                          f"{choices_error('metric', config.gate.metric, METRICS)}")
    check_thresholds(config)
    check_rater_columns(config)
    for scorer in config.scorers:
        check_scorer(scorer, config)
    for scorer in config.scorers:
        check_model(scorer, config)
    check_execution(config)


def check_rater_columns(config: Config) -> None:
    """A human rating column is never a scorer's prediction column (a candidate rated by
    itself agrees with its raters by construction)."""
    predictions = {}
    for scorer in config.scorers:
        if isinstance(scorer.columns, str):
            predictions.update({scorer.columns.replace("{dimension}", d): scorer.name
                                for d in config.rubric.dimensions})
        elif isinstance(scorer.columns, dict):
            predictions.update(dict.fromkeys(scorer.columns.values(), scorer.name))
    for dimension in config.rubric.dimensions:
        for column in config.rubric.rater_columns(dimension):
            if column in predictions:
                raise ConfigError(f"{config.source}: rubric.dimensions.{dimension}: rater "
                                  f"column {column!r} holds the predictions of scorer "
                                  f"{predictions[column]!r}")


def check_overrides(config: Config, slice_names: list[str]) -> None:
    for i, override in enumerate(config.gate.overrides):
        if override.slice is not None and override.slice not in slice_names:
            raise ConfigError(f"{config.source}: gate.overrides[{i}].slice: unknown slice "
                              f"{override.slice!r} (defined: {', '.join(slice_names)})")


def check_calibration(scorer: ScorerConfig, config: Config, sample: Sample) -> str | None:
    """A calibrating recipe's rows exist in the sample file, and are enough; a warning
    when they include gate rows (a model calibrated on the rows it is judged on can
    look better there than on production traffic)."""
    if scorer.recipe is None or not RECIPES[scorer.recipe].calibrates:
        return None
    label = f"{config.source}: {scorer.key}.calibration"
    selected = select_rows(sample.source, scorer.calibration.where, f"{label}.where")
    rows = min(len(selected), scorer.calibration.rows)
    if rows < MIN_CALIBRATION_ROWS:
        raise ConfigError(f"{label}: the calibration set has {rows} rows, fewer than the "
                          f"{MIN_CALIBRATION_ROWS} static quantization needs")
    shared = selected.index.isin(sample.frame.index).sum()
    if not shared:
        return None
    return (f"{label}.where: {shared} of the {len(selected)} rows it selects are also gate "
            f"rows; {scorer.name} is judged on rows it was calibrated on (select disjoint "
            f"rows, e.g. calibration.where: {{split: calibration}} beside sample.where: "
            f"{{split: validation}})")


def make_plan(config: Config) -> Plan:
    """Validate the config, slices and sample; raises a ValidatorError (exit 2) naming
    the file and key of the first problem."""
    check_config(config)
    slice_set = load_slices(config.slices)
    check_overrides(config, slice_set.names)
    routers = build_routers(config, slice_set.slices)
    sample = load_sample(config, slice_set.expectations)
    warnings = [check_calibration(scorer, config, sample) for scorer in config.candidates]
    masks = assign_slices(slice_set, sample.frame)
    return Plan(slice_set, sample, masks, routers, tuple(w for w in warnings if w))
