"""The logic of ``validator quantize``: apply a recipe to the configured reference and
write the artefact folder that will be served, so the same files can be gated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from validator.cache import MANIFEST, cache_root
from validator.config import Config, ScorerConfig
from validator.errors import ConfigError
from validator.plan import check_calibration, check_config
from validator.data.sample import load_sample
from validator.scorers import ProgressFactory, RECIPES, recipes_that
from validator.scoring import build_scorer


def write_artefact(config: Config, recipe: str, out: Path, force: bool,
                   progress: ProgressFactory) -> Path:
    if recipe not in RECIPES or RECIPES[recipe].writable is None:
        why = (" (its quantized torch modules have no safetensors form; "
               "use onnx-int8-dynamic)" if recipe in RECIPES else "")
        raise ConfigError(f"--recipe: {recipe!r} cannot be written as an artefact{why} "
                          f"(valid: {', '.join(recipes_that('writable'))})")
    if out.exists() and not force:
        raise ConfigError(f"{out}: already exists (use --force to replace it)")
    check_config(config)
    sample = load_sample(config)
    configured = [c for c in config.candidates if c.recipe == recipe]
    # a configured candidate with this recipe keeps its settings (calibration, ...)
    candidate = configured[0] if configured else ScorerConfig.model_validate(
        {"name": recipe, "from": "reference", "recipe": recipe})
    check_calibration(candidate, config, sample)
    reference = build_scorer(config.reference, config, None, sample, cache_root() / "artefacts",
                             progress)
    scorer = build_scorer(candidate, config, reference, sample, cache_root() / "artefacts",
                          progress)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    if RECIPES[recipe].writable == "safetensors":
        scorer.model.save_pretrained(staging, safe_serialization=True)
        scorer.tokenizer.save_pretrained(staging)
        (staging / "recipe.json").write_text(json.dumps(scorer.recipe, indent=2), "utf-8")
    else:
        shutil.copytree(scorer.path, staging, ignore=shutil.ignore_patterns(MANIFEST))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out
