"""Torch recipes: make a candidate from a ``transformers`` reference, in memory.

Each recipe returns a new scorer (with the reference's output map and tokenisation)
and records what it did (library versions, what it converted) under ``recipe`` for
the summary.
"""

from __future__ import annotations

import copy
import warnings

from validator.errors import ConfigError
from validator.scorers import RecipeContext, Scorer
from validator.scorers.layers import kept_record, select, torch_layers


def require_transformers(reference: Scorer, recipe: str):
    from validator.scorers.transformers_backend import TransformersScorer

    if not isinstance(reference, TransformersScorer):
        raise ConfigError(f"recipe {recipe!r} needs a reference with backend 'transformers', "
                          f"got {reference.backend!r}")
    return reference


def _derive(reference, name: str, model, record: dict, device: str, context: RecipeContext):
    """The candidate scorer, run like the reference unless its own ``runtime`` is set.
    Its fingerprint covers the layers kept in full precision."""
    from validator.scorers.transformers_backend import TransformersScorer, library_tag

    runtime = context.runtime or reference.runtime
    kept = [layer["name"] for layer in record.get("kept_fp32", [])]
    return TransformersScorer(name, reference.dimensions, model, reference.tokenizer,
                              reference.outputs, reference.batch_size,
                              reference.max_length, recipe=record, path=reference.path,
                              model_fingerprint=reference.derived_fingerprint(
                                  record["name"], library_tag(), *kept),
                              device=device, runtime=runtime, label=context.key,
                              tokens=reference.tokens)


def torch_int8_dynamic(name: str, reference: Scorer, context: RecipeContext) -> Scorer:
    """Dynamic INT8: Linear weights stored as int8, activations quantized per batch (CPU);
    the ``exclude``d Linear modules stay in fp32."""
    import torch

    reference = require_transformers(reference, "torch-int8-dynamic")
    kept = select(torch_layers(reference.model), context.exclude, context.key)
    with warnings.catch_warnings():  # torch.ao.quantization announces its deprecation
        warnings.simplefilter("ignore")
        from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic
        spec = {torch.nn.Linear: default_dynamic_qconfig, **{k.name: None for k in kept}}
        model = quantize_dynamic(copy.deepcopy(reference.model).cpu(), spec,
                                 dtype=torch.qint8)
    quantized = [m for m in model.modules() if "quantized" in type(m).__module__
                 and hasattr(m, "weight")]
    record = {"name": "torch-int8-dynamic", "library": f"torch {torch.__version__}",
              "method": "torch.ao.quantization.quantize_dynamic, qint8 weights",
              "quantized_op_types": sorted({type(m).__name__ for m in quantized}),
              "quantized_count": len(quantized)}
    if kept:
        record.update(kept_record(kept, context.exclude))
    return _derive(reference, name, model, record, "cpu", context)


def torch_bf16(name: str, reference: Scorer, context: RecipeContext) -> Scorer:
    """bfloat16 weights and activations (logits returned as float32)."""
    import torch

    reference = require_transformers(reference, "torch-bf16")
    model = copy.deepcopy(reference.model).to(torch.bfloat16)
    converted = sum(p.dtype == torch.bfloat16 for p in model.parameters())
    record = {"name": "torch-bf16", "library": f"torch {torch.__version__}",
              "method": "module.to(torch.bfloat16)", "quantized_op_types": ["all parameters"],
              "quantized_count": int(converted)}
    return _derive(reference, name, model, record, reference.device, context)
