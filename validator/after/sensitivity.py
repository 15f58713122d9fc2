"""Per-layer quantization error on given rows, measured with the libraries' own tools.

- ONNX (QDQ graphs, ``onnx-int8-static``): ``onnxruntime.quantization.qdq_loss_debug``:
  ``modify_model_output_intermediate_tensors`` and ``collect_activations`` on the fp32
  and the QDQ graph, ``create_activation_matching`` and ``compute_activation_error``
  (the SQNR of each quantized activation against itself before quantization, and
  against the fp32 graph's), ``create_weight_matching`` and ``compute_weight_error``.
- torch (``torch-int8-dynamic``): the eager numeric suite ``torch.ao.ns._numeric_suite``:
  ``prepare_model_with_stubs`` shadows each dynamically quantized ``Linear`` with its
  float original fed the same input (``ShadowLogger``), so each layer's output error is
  its own, not its predecessors'; ``compare_weights`` pairs the weights.

Each layer gets ``sqnr_db``: the signal-to-quantization-noise ratio of what quantizing
that layer alone does (lower: more error), on the rows given (a slice's rows), plus its
parts. Rows are fed one at a time: no padding enters the statistics (and the
ShadowLogger keeps only the first item of a batch).
"""

from __future__ import annotations

import math
import tempfile
import warnings
from pathlib import Path

import numpy as np

from validator.scorers.layers import Layer

TORCH_TOOL = ("torch.ao.ns._numeric_suite (prepare_model_with_stubs + ShadowLogger: each "
              "Linear's int8 output vs its fp32 shadow on the same input; compare_weights)")
ONNX_TOOL = ("onnxruntime.quantization.qdq_loss_debug (collect_activations, "
             "create_activation_matching + compute_activation_error, "
             "create_weight_matching with uint8 weights widened + compute_weight_error)")


def combined_db(*sqnrs: float | None) -> float | None:
    """SQNR of independent noises added together (noise powers add)."""
    powers = [10 ** (-s / 10) for s in sqnrs if s is not None and math.isfinite(s)]
    return None if not powers else float(-10 * math.log10(sum(powers)))


def sqnr_db(signal: np.ndarray, noisy: np.ndarray) -> float:
    from onnxruntime.quantization.qdq_loss_debug import (
        compute_signal_to_quantization_noice_ratio)

    return float(compute_signal_to_quantization_noice_ratio(signal, noisy))


def _single_rows(scorer, texts: list[str]):
    """One unpadded row of model inputs (numpy int64) per text."""
    for ids in scorer.tokens.encode(scorer, texts):
        ids = np.asarray([ids], dtype=np.int64)
        yield {"input_ids": ids, "attention_mask": np.ones_like(ids),
               "token_type_ids": np.zeros_like(ids)}


def torch_layer_errors(reference, candidate, layers: list[Layer],
                       texts: list[str]) -> dict[str, dict]:
    """Per quantized Linear module: output SQNR vs its fp32 shadow, weight SQNR."""
    import copy

    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
        from torch.ao.ns import _numeric_suite as ns

    float_model = reference.model.float().cpu().eval()
    shadowed = copy.deepcopy(candidate.model).eval()
    ns.prepare_model_with_stubs(float_model, shadowed, {torch.nn.Linear}, ns.ShadowLogger)
    names = set(reference.tokenizer.model_input_names)
    with torch.inference_mode():
        for row in _single_rows(reference, texts):
            shadowed(**{k: torch.from_numpy(v) for k, v in row.items() if k in names})
    logged = ns.get_logger_dict(shadowed)
    weights = ns.compare_weights(float_model.state_dict(), candidate.model.state_dict())
    out = {}
    for layer in layers:
        stats = logged.get(f"{layer.name}.stats")
        if stats is None or not isinstance(candidate.model.get_submodule(layer.name),
                                           DynamicLinear):
            continue  # kept in fp32 already
        activation = sqnr_db(torch.cat([t.flatten() for t in stats["float"]]).numpy(),
                             torch.cat([t.flatten() for t in stats["quantized"]]).numpy())
        pair = weights.get(f"{layer.name}._packed_params._packed_params")
        weight = None if pair is None else sqnr_db(
            pair["float"].numpy(), pair["quantized"].dequantize().numpy())
        out[layer.name] = {"output_sqnr_db": activation, "weight_sqnr_db": weight,
                           "sqnr_db": activation}
    if reference.device != "cpu":
        reference.model.to(reference.device)
    return out


def weight_matching(fp32_file: Path, qdq_file: Path) -> dict[str, dict]:
    """``create_weight_matching``'s pairs (weight -> float, dequantized), with uint8
    weights widened before the zero point is subtracted: the library subtracts in the
    stored dtype, so per-tensor uint8 weights (the QDQ embeddings) wrap around."""
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization.qdq_loss_debug import create_weight_matching

    matched = create_weight_matching(str(fp32_file), str(qdq_file))
    graph = onnx.load(str(qdq_file), load_external_data=False).graph
    inits = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3:
            continue
        name = node.input[0].removesuffix("_quantized")
        if name not in matched or node.input[0] not in inits:
            continue
        weight, scale, zero = (numpy_helper.to_array(inits[i]).astype(np.float64)
                               for i in node.input[:3])
        if weight.ndim and scale.size > 1:  # per channel along the node's axis
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [1] * weight.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        matched[name]["dequantized"] = (weight - zero) * scale
    return matched


class _Rows:
    """A CalibrationDataReader over prepared rows (what collect_activations iterates)."""

    def __init__(self, rows: list[dict], names: list[str]):
        self.rows = [{n: r[n] for n in names} for r in rows]

    def __iter__(self):
        return iter(self.rows)


def onnx_layer_errors(fp32_file: Path, qdq_file: Path, reference, layers: list[Layer],
                      texts: list[str]) -> dict[str, dict]:
    """Per quantized node of a QDQ graph: the SQNR of its quantized inputs (on these
    rows) and weights, and of its input against the fp32 graph's (error accumulated)."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations, compute_activation_error, compute_weight_error,
        create_activation_matching, modify_model_output_intermediate_tensors)

    graph = onnx.load(str(fp32_file), load_external_data=False).graph
    names = [i.name for i in graph.input]
    rows = list(_single_rows(reference, texts))
    saved = ["MatMul", "Gemm", "Gather", "QuantizeLinear"]
    with tempfile.TemporaryDirectory(prefix="slice-validator-diagnose-") as scratch:
        activations = {}
        for label, source in (("float", fp32_file), ("qdq", qdq_file)):
            augmented = Path(scratch) / f"{label}.onnx"
            modify_model_output_intermediate_tensors(str(source), str(augmented), saved)
            activations[label] = collect_activations(str(augmented), _Rows(rows, names))
        matched = create_activation_matching(activations["qdq"], activations["float"])
        activation_errors = compute_activation_error(  # tensors both graphs saved
            {k: v for k, v in matched.items() if "float" in v})
        weight_errors = compute_weight_error(weight_matching(fp32_file, qdq_file))
    inputs = {node.name: list(node.input) for node in graph.node}
    out = {}
    for layer in layers:
        local = [activation_errors[i]["qdq_err"] for i in inputs[layer.name]
                 if i in activation_errors]
        weight = [weight_errors[i] for i in inputs[layer.name] if i in weight_errors]
        if not local and not weight:
            continue  # not quantized in this graph (kept in fp32)
        carried = [activation_errors[i].get("xmodel_err") for i in inputs[layer.name]
                   if i in activation_errors]
        activation = combined_db(*local)
        out[layer.name] = {"input_sqnr_db": activation,
                           "weight_sqnr_db": combined_db(*weight),
                           "input_vs_fp32_sqnr_db": combined_db(*carried),
                           "sqnr_db": combined_db(activation, *weight)}
    return out
