"""Recipes: make a quantized candidate from the reference scorer.

Each recipe returns a new scorer and records what it did (library versions, the
module types it quantized) under ``recipe`` for the summary.
"""

from __future__ import annotations

import copy
import warnings

from validator.errors import ConfigError
from validator.scorers import Scorer


def _require_transformers(reference: Scorer, recipe: str):
    from validator.scorers.transformers_backend import TransformersScorer

    if not isinstance(reference, TransformersScorer):
        raise ConfigError(f"recipe {recipe!r} needs a reference with backend 'transformers', "
                          f"got {reference.backend!r}")
    return TransformersScorer


def torch_int8_dynamic(name: str, reference: Scorer) -> Scorer:
    """Dynamic INT8: Linear weights stored as int8, activations quantized per batch."""
    import torch

    transformers_scorer = _require_transformers(reference, "torch-int8-dynamic")
    with warnings.catch_warnings():  # torch.ao.quantization announces its deprecation
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic
        model = quantize_dynamic(copy.deepcopy(reference.model), {torch.nn.Linear},
                                 dtype=torch.qint8)
    quantized = sorted({type(m).__module__ + "." + type(m).__name__ for m in model.modules()
                        if "quantized" in type(m).__module__})
    record = {"name": "torch-int8-dynamic", "library": f"torch {torch.__version__}",
              "method": "torch.ao.quantization.quantize_dynamic, qint8 weights",
              "quantized_modules": quantized,
              "quantized_count": sum("quantized" in type(m).__module__ for m in model.modules())}
    return transformers_scorer(name, reference.dimensions, model, reference.tokenizer,
                               reference.output_index, reference.batch_size,
                               reference.max_length, recipe=record)
