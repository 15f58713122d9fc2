"""Scorers: texts in, one score per rubric dimension out (``Scorer.predict``).

Backends load a scorer from config (``transformers``, ``onnxruntime``), or, for
``columns``, a source of predictions already in the sample (``ColumnPredictions``,
which reads them instead of predicting); recipes make a candidate from the reference
(``torch-int8-dynamic``, ``torch-bf16``, ``torch-fp16``, ``torchao-int8-dynamic``,
``onnx-fp32``, ``onnx-int8-dynamic``, ``onnx-int8-static``). Both are registries mapping
a name to ``"module:attribute"`` so heavy libraries load only when used; a recipe's
entry also says what it can do (``Recipe``), so adding a recipe is one entry here.
"""

from __future__ import annotations

import contextlib
import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Iterator

import numpy as np

from validator.errors import choices_error

# progress(description, total) -> context manager yielding advance(n_done)
ProgressFactory = Callable[[str, int], ContextManager[Callable[[int], None]]]
# on_batch(row_positions, values): called as rows are predicted (progress, checkpoints)
BatchCallback = Callable[[np.ndarray, np.ndarray], None]


@dataclass(frozen=True)
class RecipeContext:
    """What a recipe may need besides the reference: calibration rows, a place to keep
    artefacts it builds, progress, the candidate's configured torch runtime."""
    key: str  # where the candidate sits in the config, for error messages
    calibration_texts: Callable[[], list[str]]
    artefact_dir: Path
    progress: "ProgressFactory"
    runtime: str | None = None  # eager | torchscript; None: the reference's
    exclude: tuple[str, ...] = ()  # layer names or patterns kept in full precision


@contextlib.contextmanager
def no_progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


class Scorer(ABC):
    """A model that scores texts on every rubric dimension, in the rubric's order."""

    backend: str = ""
    runtime: str | None = None  # how a torch model runs: eager | torchscript
    threads: int | None = None  # cores predict may use (None: all; a Ray actor: its share)

    def __init__(self, name: str, dimensions: list[str], recipe: dict | None = None):
        self.name = name
        self.dimensions = list(dimensions)
        self.recipe = recipe  # what the recipe did, or None for a loaded scorer

    @abstractmethod
    def predict(self, texts: list[str], on_batch: BatchCallback | None = None) -> np.ndarray:
        """Raw (unrounded) predictions on the rubric's scale, shape (texts, dimensions).
        ``on_batch(rows, values)`` is called as each batch of rows is done."""

    def set_threads(self, threads: int) -> None:
        """Use ``threads`` cores from now on (backends with thread settings override)."""

    def batch_order(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """(row order, batch size) in which ``predict`` scores ``texts``: predicting any
        run of that order starting at a multiple of the batch size gives the values
        predicting all of them gives (how the Ray engine splits work without changing a
        batch). Default: rows that do not depend on each other."""
        return np.arange(len(texts)), 1

    def fingerprint(self) -> str | None:
        """A hash of everything that determines the predictions (None: never cached)."""
        return None

    def size_bytes(self) -> int | None:
        """Bytes of the artefact on disk (or serialized, for in-memory models)."""
        return None

    def parameter_bytes(self) -> int | None:
        """Bytes of the weights held in memory."""
        return None

    def device_label(self) -> str | None:
        """Where it runs: "cpu", or "cuda <device name>"."""
        return None

    def compute_dtype(self) -> str | None:
        """The type its weights compute in (float32, bfloat16, float16, int8): its
        recipe's, else None (unknown) unless the backend can tell."""
        entry = RECIPES.get((self.recipe or {}).get("name"))
        return entry.dtype if entry is not None else None

    def serving_spec(self) -> dict | None:
        """How a fresh process loads this scorer from disk, as serving would (for the
        isolated measurement, validator.speed.isolated); None: not measurable alone."""
        return None


BACKENDS = {
    "transformers": "validator.scorers.transformers_backend:load_transformers_scorer",
    "onnxruntime": "validator.scorers.onnx_backend:load_onnx_scorer",
    "columns": "validator.scorers.columns_backend:ColumnPredictions",
}


@dataclass(frozen=True)
class Recipe:
    """A recipe's registry entry: where it lives and what it can do (read by the plan,
    ``validator quantize``, ``diagnose`` and ``repair`` instead of lists of names)."""
    target: str                   # "module:attribute" of the recipe function
    runtime: str                  # what the candidate runs on: "torch" | "onnxruntime"
    dtype: str                    # its weights: float32 | bfloat16 | float16 | int8
    device: str = "reference"     # where it runs: the reference's device, or "cpu"
    calibrates: bool = False      # quantizes activations with ranges from sample rows
    accepts_exclude: bool = False  # can keep named layers in full precision
    writable: str | None = None   # how ``validator quantize`` writes it: safetensors | onnx
    diagnosable: bool = False     # ``validator diagnose`` has a per-layer tool for it
    traceable: bool = True        # can run as a TorchScript trace (``runtime: torchscript``)


RECIPES = {
    "torch-int8-dynamic": Recipe("validator.scorers.torch_recipes:torch_int8_dynamic", "torch",
                                 "int8", device="cpu", accepts_exclude=True,
                                 diagnosable=True),
    "torch-bf16": Recipe("validator.scorers.torch_recipes:torch_bf16", "torch", "bfloat16",
                         writable="safetensors"),
    "torch-fp16": Recipe("validator.scorers.torch_recipes:torch_fp16", "torch", "float16",
                         writable="safetensors"),
    "torchao-int8-dynamic": Recipe("validator.scorers.torch_recipes:torchao_int8_dynamic", "torch",
                                   "int8", accepts_exclude=True, traceable=False),
    "onnx-fp32": Recipe("validator.scorers.onnx_recipes:onnx_fp32", "onnxruntime", "float32",
                        device="cpu", writable="onnx"),
    "onnx-int8-dynamic": Recipe("validator.scorers.onnx_recipes:onnx_int8_dynamic",
                                "onnxruntime", "int8", device="cpu", accepts_exclude=True,
                                writable="onnx"),
    "onnx-int8-static": Recipe("validator.scorers.onnx_recipes:onnx_int8_static",
                               "onnxruntime", "int8", device="cpu", calibrates=True,
                               accepts_exclude=True, writable="onnx", diagnosable=True),
}


def recipes_that(ability: str) -> list[str]:
    """The names of the recipes with ``ability`` set (for error messages)."""
    return [name for name, recipe in RECIPES.items() if getattr(recipe, ability)]


def _resolve(registry: dict, kind: str, name: str):
    if name not in registry:
        raise KeyError(choices_error(kind, name, registry))
    entry = registry[name]
    module, attribute = getattr(entry, "target", entry).split(":")
    return getattr(importlib.import_module(module), attribute)


def get_backend(name: str):
    return _resolve(BACKENDS, "backend", name)


def get_recipe(name: str):
    return _resolve(RECIPES, "recipe", name)
