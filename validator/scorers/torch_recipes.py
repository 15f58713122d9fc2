"""Torch recipes: make a candidate from a ``transformers`` reference, in memory.

Each recipe returns a new scorer (with the reference's output map and tokenisation)
and records what it did (library versions, what it converted) under ``recipe`` for
the summary.
"""

from __future__ import annotations

import copy
import dataclasses
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


def _half_precision(name: str, reference: Scorer, context: RecipeContext, recipe: str,
                    dtype_name: str) -> Scorer:
    """The reference's weights and activations in a 16-bit float type, on its device
    (logits returned as float32)."""
    import torch

    dtype = getattr(torch, dtype_name)
    reference = require_transformers(reference, recipe)
    model = copy.deepcopy(reference.model).to(dtype)
    converted = sum(p.dtype == dtype for p in model.parameters())
    record = {"name": recipe, "library": f"torch {torch.__version__}",
              "method": f"module.to(torch.{dtype_name})", "quantized_op_types": ["all parameters"],
              "quantized_count": int(converted)}
    return _derive(reference, name, model, record, reference.device, context)


def torch_bf16(name: str, reference: Scorer, context: RecipeContext) -> Scorer:
    """bfloat16 weights and activations (logits returned as float32)."""
    return _half_precision(name, reference, context, "torch-bf16", "bfloat16")


def torch_fp16(name: str, reference: Scorer, context: RecipeContext) -> Scorer:
    """float16 weights and activations (logits returned as float32): the GPU's tensor
    cores run it like bf16, with 3 more mantissa bits and a narrower range."""
    return _half_precision(name, reference, context, "torch-fp16", "float16")


def torchao_int8_dynamic(name: str, reference: Scorer, context: RecipeContext) -> Scorer:
    """INT8 on the reference's device (the GPU's integer tensor cores) with torchao:
    Linear weights int8 per output channel, activations quantized per token at run time
    (``Int8DynamicActivationInt8WeightConfig``); the ``exclude``d Linear modules stay in
    full precision. Runs eager (torchao's quantized tensors do not trace)."""
    import torch

    reference = require_transformers(reference, "torchao-int8-dynamic")
    try:
        import torchao
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError as exc:
        raise ConfigError(f"{context.key}.recipe: 'torchao-int8-dynamic' needs torchao "
                          f"(pip install 'slice-validator[gpu]')") from exc
    kept = select(torch_layers(reference.model), context.exclude, context.key)
    kept_names = {layer.name for layer in kept}
    model = copy.deepcopy(reference.model)

    def quantized(module, fqn: str) -> bool:
        return isinstance(module, torch.nn.Linear) and fqn not in kept_names

    with warnings.catch_warnings():  # torchao warns about its own version checks
        warnings.simplefilter("ignore")
        quantize_(model, Int8DynamicActivationInt8WeightConfig(), filter_fn=quantized)
    count = sum(1 for fqn, m in model.named_modules() if isinstance(m, torch.nn.Linear)
                and fqn not in kept_names)
    record = {"name": "torchao-int8-dynamic",
              "library": f"torch {torch.__version__} torchao {torchao.__version__}",
              "method": "torchao.quantization.quantize_(Int8DynamicActivationInt8WeightConfig)"
                        ", int8 weights per channel, int8 activations per token",
              "quantized_op_types": ["Linear"], "quantized_count": count}
    if kept:
        record.update(kept_record(kept, context.exclude))
    return _derive(reference, name, model, record, reference.device,
                   dataclasses.replace(context, runtime="eager"))
