"""The layers a quantizing recipe may keep in full precision (``exclude``).

A layer is a quantizable ONNX node (``MatMul``, ``Gemm``, ``Gather``) or a torch
``Linear`` module. An ``exclude`` entry names layers by their name (the ONNX node name
that ONNX Runtime's ``nodes_to_exclude`` takes, or the torch module name) or by their
module path (ONNX nodes exported by ``torch.onnx`` carry the torch module they came
from, so ``bert.encoder.layer.5.*`` means the same layers for every recipe), exactly
or as a shell-style pattern. An entry that matches no layer is a config error naming it.
"""

from __future__ import annotations

import ast
import fnmatch
from dataclasses import asdict, dataclass
from pathlib import Path

from validator.errors import ConfigError

ONNX_OP_TYPES = ("MatMul", "Gemm", "Gather")  # what the ONNX INT8 recipes quantize
FLOAT_BYTES, INT8_BYTES = 4, 1


@dataclass(frozen=True)
class Layer:
    name: str          # ONNX node name, or torch module name
    module: str        # the torch module it belongs to ("" when unknown)
    op_type: str
    weight_elements: int  # elements of its constant weight (0: activations only)

    def matches(self, pattern: str) -> bool:
        return any(fnmatch.fnmatchcase(text, pattern) for text in (self.name, self.module)
                   if text)


def _module_of(node) -> str:
    """The torch module an exported node came from: the dynamo exporter's
    ``pkg.torch.onnx.name_scopes``, else the TorchScript exporter's node name
    (``/model/bert/encoder/layer.5/output/dense/MatMul``)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)  # a list of strings, never code
            except (ValueError, SyntaxError):
                return ""
            if isinstance(scopes, list) and len(scopes) >= 2:
                return str(scopes[-2]).removeprefix("model.")  # the export's wrapper
    if node.name.startswith("/") and node.name.count("/") >= 2:
        return ".".join(node.name.strip("/").split("/")[:-1]).removeprefix("model.")
    return ""


def onnx_layers(onnx_file: Path) -> list[Layer]:
    """The quantizable nodes of an fp32 ONNX graph, in graph order: the MatMul / Gemm /
    Gather nodes on float data (the TorchScript export's Gathers of tensor shapes are
    integer and never quantized)."""
    import onnx

    model = onnx.load(str(onnx_file), load_external_data=False)
    graph = onnx.shape_inference.infer_shapes(model).graph
    sizes = {init.name: _elements(init.dims) for init in graph.initializer}
    types = {v.name: v.type.tensor_type.elem_type
             for v in [*graph.value_info, *graph.input, *graph.output]}
    types.update({init.name: init.data_type for init in graph.initializer})
    return [Layer(node.name, _module_of(node), node.op_type,
                  sum(sizes.get(name, 0) for name in node.input))
            for node in graph.node if node.op_type in ONNX_OP_TYPES
            and types.get(node.input[0], onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT]


def _elements(dims) -> int:
    total = 1
    for d in dims:
        total *= int(d)
    return total


def torch_layers(model) -> list[Layer]:
    """The ``Linear`` modules of a torch model (what dynamic quantization converts)."""
    import torch

    return [Layer(name, name, "Linear", module.weight.numel())
            for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]


def select(layers: list[Layer], patterns: tuple[str, ...], key: str) -> list[Layer]:
    """The layers the ``exclude`` entries name; ConfigError naming an entry that matches
    none (with a few valid names)."""
    for pattern in patterns:
        if not any(layer.matches(pattern) for layer in layers):
            examples = ", ".join(repr(x.name) for x in layers[:3])
            raise ConfigError(f"{key}.exclude: no layer matches {pattern!r} (layers are "
                              f"named like {examples} or by module path; `validator "
                              f"diagnose` lists them)")
    return [layer for layer in layers if any(layer.matches(p) for p in patterns)]


def kept_record(kept: list[Layer], patterns: tuple[str, ...]) -> dict:
    """What stayed in full precision, for the recipe record, and its size cost: the
    bytes its weights take in fp32 beyond int8 (scales and zero points aside)."""
    elements = sum(layer.weight_elements for layer in kept)
    return {"exclude": list(patterns), "kept_fp32": [asdict(layer) for layer in kept],
            "kept_fp32_count": len(kept),
            "kept_fp32_size_cost_bytes": elements * (FLOAT_BYTES - INT8_BYTES)}


@dataclass(frozen=True)
class Unit:
    """What diagnose and repair keep in fp32 at once: one layer, or a block of them."""
    name: str
    layers: tuple[Layer, ...]
    patterns: tuple[str, ...]  # the ``exclude`` entries that name exactly these layers

    @property
    def op_type(self) -> str:
        return "+".join(sorted({layer.op_type for layer in self.layers}))


def block_of(layer: Layer) -> str:
    """The block a layer belongs to: its module path up to the first index
    (``bert.encoder.layer.3``), else its first two parts (``bert.embeddings``)."""
    parts = (layer.module or layer.name).split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[:i + 1])
    return ".".join(parts[:2])


def units(layers: list[Layer], by: str) -> list[Unit]:
    """``node``: every layer alone; ``block``: the layers of each block together."""
    if by == "node":
        return [Unit(layer.name, (layer,), (layer.name,)) for layer in layers]
    blocks: dict[str, list[Layer]] = {}
    for layer in layers:
        blocks.setdefault(block_of(layer), []).append(layer)
    out = []
    for block, members in blocks.items():
        exact = any(block in (m.module, m.name) for m in members)
        pattern = block if exact else f"{block}.*"
        named = [x for x in layers if x.matches(pattern)]
        out.append(Unit(block, tuple(members),
                        (pattern,) if named == members else tuple(m.name for m in members)))
    return out
