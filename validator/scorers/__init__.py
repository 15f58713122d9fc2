"""Scorers: texts in, one score per rubric dimension out.

Backends load a scorer from config (``transformers``, ``columns``); recipes make a
candidate from the reference (``torch-int8-dynamic``). Both are registries mapping
a name to ``"module:attribute"`` so heavy libraries load only when used.
"""

from __future__ import annotations

import contextlib
import importlib
from abc import ABC, abstractmethod
from typing import Callable, ContextManager, Iterator

import numpy as np

from validator.errors import choices_error
from validator.sample import Sample

# progress(description, total) -> context manager yielding advance(n_done)
ProgressFactory = Callable[[str, int], ContextManager[Callable[[int], None]]]


@contextlib.contextmanager
def no_progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


class Scorer(ABC):
    """Scores gate rows on every rubric dimension, in the rubric's order."""

    backend: str = ""

    def __init__(self, name: str, dimensions: list[str], recipe: dict | None = None):
        self.name = name
        self.dimensions = list(dimensions)
        self.recipe = recipe  # what the recipe did, or None for a loaded scorer

    @abstractmethod
    def score(self, sample: Sample, progress: ProgressFactory = no_progress) -> np.ndarray:
        """An array of shape (rows, dimensions), raw (unrounded) predictions."""

    def score_texts(self, texts: list[str]) -> np.ndarray | None:
        """Score bare texts (latency probes); None for scorers that need sample columns."""
        return None

    def size_bytes(self) -> int | None:
        return None


BACKENDS = {
    "transformers": "validator.scorers.transformers_backend:load_transformers_scorer",
    "columns": "validator.scorers.columns_backend:ColumnsScorer",
}

RECIPES = {
    "torch-int8-dynamic": "validator.scorers.recipes:torch_int8_dynamic",
}


def _resolve(registry: dict[str, str], kind: str, name: str):
    if name not in registry:
        raise KeyError(choices_error(kind, name, registry))
    module, attribute = registry[name].split(":")
    return getattr(importlib.import_module(module), attribute)


def get_backend(name: str):
    return _resolve(BACKENDS, "backend", name)


def get_recipe(name: str):
    return _resolve(RECIPES, "recipe", name)
