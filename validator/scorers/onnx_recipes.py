"""ONNX recipes: export the reference to ONNX and quantize it with ONNX Runtime.

Each recipe writes a shippable artefact folder (``model.onnx``, ``config.json``, the
tokenizer, ``recipe.json``) into the artefact cache, keyed by the reference's
fingerprint, the recipe and the library versions, with a manifest of its files' sha256
that is checked on every use, then loads it through the
``onnxruntime`` backend, exactly as a served model would be loaded.
``validator quantize`` copies that folder out.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from validator.cache import CACHED_FOLDER_FORMAT, verify_manifest, write_manifest
from validator.errors import ModelError
from validator.scorers import RecipeContext, Scorer
from validator.scorers.batched import padded_batches
from validator.scorers.layers import ONNX_OP_TYPES, Layer, kept_record, onnx_layers, select
from validator.scorers.onnx_backend import build_onnx_scorer
from validator.scorers.onnx_export import export_torchscript, fuse, write_side_files
from validator.scorers.torch_recipes import require_transformers

CALIBRATION_BATCH = 32
EXPORT = "torchscript-eager-attention, transformers optimizer fusions"  # in artefact keys


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__}


def _copy_side_files(source: Path, target: Path) -> None:
    for path in source.iterdir():
        if path.name not in ("model.onnx", "recipe.json"):
            shutil.copyfile(path, target / path.name)


def cached_artefact(context: RecipeContext, key: str, build: Callable[[Path], dict]) -> Path:
    """The artefact folder for ``key``, built once (atomically) by ``build(folder)``.
    A cached folder is used only while its files match its manifest's sha256; a
    tampered or half-written one is rebuilt."""
    target = context.artefact_dir / key
    if verify_manifest(target):
        return target
    shutil.rmtree(target, ignore_errors=True)
    context.artefact_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=context.artefact_dir))
    previous = logging.root.manager.disable  # a build may nest another (calibration)
    logging.disable(logging.WARNING)  # exporter and quantizer log advice on every call
    try:
        record = build(staging)
        (staging / "recipe.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
        write_manifest(staging)
        try:
            os.replace(staging, target)
        except OSError:
            if not verify_manifest(target):  # not a concurrent run's finished build
                raise
    finally:
        logging.disable(previous)
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _key(reference, *parts) -> str:
    digest = hashlib.sha256(reference.model_fingerprint.encode())  # whatever its runtime
    digest.update(CACHED_FOLDER_FORMAT.encode())
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True).encode())
    return digest.hexdigest()[:20]


def unfused_artefact(reference, context: RecipeContext) -> Path:
    """The unfused fp32 TorchScript export: what static (QDQ) quantization starts from,
    and the graph ``validator diagnose`` compares the static candidate with."""
    def build(folder: Path) -> dict:
        export_torchscript(reference, folder / "model.onnx")
        write_side_files(reference, folder)
        return {"name": "onnx-fp32-unfused", "libraries": versions(),
                "method": "torch.onnx.export(dynamo=False, eager attention), opset 17, fp32",
                "quantized_op_types": [], "quantized_count": 0}

    key = f"onnx-fp32-unfused-{_key(reference, versions(), EXPORT)}"
    return cached_artefact(context, key, build)


def fp32_artefact(reference, context: RecipeContext) -> Path:
    """The fused fp32 graph (onnx_export) of the unfused export (``unfused_artefact``,
    exported once for both), the source the dynamic INT8 recipe quantizes."""
    def build(folder: Path) -> dict:
        fusion = fuse(reference, unfused_artefact(reference, context) / "model.onnx",
                      folder / "model.onnx")
        write_side_files(reference, folder)
        return {"name": "onnx-fp32", "libraries": versions(),
                "method": "torch.onnx.export(dynamo=False, eager attention), opset 17, "
                          "onnxruntime.transformers.optimizer fusions, fp32",
                **fusion, "quantized_op_types": [], "quantized_count": 0}

    return cached_artefact(context, f"onnx-fp32-{_key(reference, versions(), EXPORT)}", build)


@contextmanager
def staged_input(source: Path, folder: Path) -> Iterator[Path]:
    """The graph ``source/model.onnx`` linked (or copied) into ``folder``, the build's own
    staging folder, for an ONNX Runtime quantizer to read: it writes
    ``<input>-inferred.onnx`` beside its input, which must never be inside a cached,
    verified folder (a run killed meanwhile would leave it there; a concurrent run
    verifying that folder would find a file its manifest does not list)."""
    staged = folder / "input.onnx"
    try:
        os.link(source / "model.onnx", staged)
    except OSError:
        shutil.copyfile(source / "model.onnx", staged)
    try:
        yield staged
    finally:
        staged.unlink(missing_ok=True)


def fusion_of(source: Path) -> dict:
    """The fusions recorded for the fp32 graph a quantized recipe starts from."""
    record = json.loads((source / "recipe.json").read_text("utf-8"))
    return {"graph_fusions": record.get("graph_fusions", {}),
            "fusion_warning": record.get("fusion_warning")}


def quantized_op_types(onnx_file: Path) -> tuple[list[str], int]:
    import onnx

    graph = onnx.load(str(onnx_file), load_external_data=False).graph
    quantized = [n.op_type for n in graph.node
                 if "Integer" in n.op_type or n.op_type.startswith(("Q", "DynamicQuantize"))
                 or n.op_type == "DequantizeLinear"]
    return sorted(set(quantized)), len(quantized)


def _finish(record: dict, folder: Path) -> dict:
    types, count = quantized_op_types(folder / "model.onnx")
    return {**record, "libraries": versions(), "quantized_op_types": types,
            "quantized_count": count}


def onnx_reference(reference: Scorer, context: RecipeContext, recipe: str):
    """The transformers reference an ONNX recipe exports (the plan has refused a
    ``runtime`` on the candidate: that is a torch setting)."""
    return require_transformers(reference, recipe)


def _load(name: str, reference, folder: Path) -> Scorer:
    record = json.loads((folder / "recipe.json").read_text("utf-8"))
    return build_onnx_scorer(name, reference.dimensions, folder / "model.onnx",
                             reference.batch_size, reference.max_length, "all", "cpu",
                             lambda labels: reference.outputs, record, reference.tokens)


def onnx_fp32(name: str, reference: Scorer, context: RecipeContext) -> Scorer:
    """Export only: the fp32 ONNX graph (the baseline for the ONNX INT8 recipes)."""
    reference = onnx_reference(reference, context, "onnx-fp32")
    return _load(name, reference, fp32_artefact(reference, context))


def excluded_layers(source: Path, context: RecipeContext) -> list[Layer]:
    """The fp32 graph's layers the candidate's ``exclude`` names (none without it)."""
    return select(onnx_layers(source / "model.onnx"), context.exclude, context.key) \
        if context.exclude else []


def _kept_key(kept: list[Layer]) -> tuple:
    """Key parts for the layers kept in fp32: none when all are quantized, so the
    artefacts of recipes without ``exclude`` keep their keys."""
    return (sorted(layer.name for layer in kept),) if kept else ()


def _with_kept(record: dict, kept: list[Layer], context: RecipeContext) -> dict:
    return {**record, **kept_record(kept, context.exclude)} if kept else record


def onnx_int8_dynamic(name: str, reference: Scorer, context: RecipeContext) -> Scorer:
    """ONNX Runtime dynamic quantization of the fused graph: int8 weights, activations
    quantized at run time; the ``exclude``d nodes stay in fp32 (``nodes_to_exclude``)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    reference = onnx_reference(reference, context, "onnx-int8-dynamic")
    source = fp32_artefact(reference, context)
    kept = excluded_layers(source, context)

    def build(folder: Path) -> dict:
        with staged_input(source, folder) as graph:
            quantize_dynamic(graph, folder / "model.onnx",
                             weight_type=QuantType.QInt8,  # fused ops need a default type
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
                             nodes_to_exclude=[layer.name for layer in kept])
        _copy_side_files(source, folder)
        return _finish(_with_kept({"name": "onnx-int8-dynamic",
                                   "method": "onnxruntime.quantization.quantize_dynamic of "
                                             "the fused graph, QInt8 weights",
                                   **fusion_of(source)}, kept, context), folder)

    key = f"onnx-int8-dynamic-{_key(reference, versions(), EXPORT, *_kept_key(kept))}"
    return _load(name, reference, cached_artefact(context, key, build))


class CalibrationReader(CalibrationDataReader):
    """Feeds padded batches of calibration rows to ONNX Runtime's calibrator."""

    def __init__(self, reference, texts: list[str], input_names: list[str]):
        self.batches = []
        for _, padded in padded_batches(reference.tokenizer, reference.encode(texts),
                                        CALIBRATION_BATCH):
            feed = {"input_ids": padded["input_ids"],
                    "attention_mask": padded["attention_mask"],
                    "token_type_ids": np.zeros_like(padded["input_ids"])}
            self.batches.append({n: feed[n] for n in input_names})
        self._iter = iter(self.batches)

    def get_next(self):
        return next(self._iter, None)

    def rewind(self):
        self._iter = iter(self.batches)


def static_settings() -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    return {"quant_format": QuantFormat.QDQ, "per_channel": True,
            "activation_type": QuantType.QUInt8, "weight_type": QuantType.QInt8,
            "op_types_to_quantize": list(ONNX_OP_TYPES),
            "calibrate_method": CalibrationMethod.MinMax}


def _reader(reference, source: Path, texts: list[str]) -> CalibrationReader:
    import onnxruntime as ort

    inputs = [i.name for i in ort.InferenceSession(
        str(source / "model.onnx"), providers=["CPUExecutionProvider"]).get_inputs()]
    return CalibrationReader(reference, texts, inputs)


def calibration_ranges(reference, context: RecipeContext, source: Path,
                       text_hash: str) -> Path:
    """Where the calibration ranges of ``source`` for the rows ``text_hash`` are kept."""
    key = f"onnx-calibration-{_key(reference, versions(), source.name, text_hash)}"
    return context.artefact_dir / key / "ranges.json"


def quantize_calibrated(reference, context: RecipeContext, source: Path, texts: list[str],
                        text_hash: str, label: str, target: Path, **options) -> None:
    """``quantize_static`` of ``source`` into ``target`` with the ranges of ``texts``.
    The ranges are ONNX Runtime's calibration cache (``calibration_cache_path``), kept
    once per graph and calibration rows, so variants that keep other layers in fp32 skip
    calibration; the first quantization calibrates and writes them in the same call.
    Keyed by the graph's own artefact key too: ranges are per tensor name, and another
    export of the same model names its tensors differently. Where the installed ONNX
    Runtime cannot reuse ranges, every quantization calibrates."""
    from onnxruntime.quantization import quantize_static

    def quantize(reader, cache_path) -> None:
        cache = {} if cache_path is None else {"calibration_cache_path": cache_path}
        with staged_input(source, target.parent) as graph:
            quantize_static(graph, target, reader, **cache, **options, **static_settings())

    def calibrate(cache_path) -> None:
        with context.progress(f"calibrating {label}", len(texts)) as advance:
            quantize(_reader(reference, source, texts), cache_path)
            advance(len(texts))

    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        calibrate(None)
        return
    ranges = calibration_ranges(reference, context, source, text_hash)
    if verify_manifest(ranges.parent):
        quantize(None, ranges)
        return
    fresh = target.with_name(ranges.name)
    calibrate(fresh)

    def keep(folder: Path) -> dict:
        shutil.move(fresh, folder / ranges.name)
        return {"name": "onnx-calibration", "libraries": versions(),
                "calibration_rows": len(texts), "calibration_sha256": text_hash}

    cached_artefact(context, ranges.parent.name, keep)


def onnx_int8_static(name: str, reference: Scorer, context: RecipeContext) -> Scorer:
    """ONNX Runtime static quantization (QDQ, per-channel int8 weights, uint8
    activations) with ranges calibrated on the configured calibration rows; the
    ``exclude``d nodes stay in fp32 (``nodes_to_exclude``). It quantizes the unfused
    TorchScript export (``unfused_artefact``): QDQ cannot quantize the fused
    ``Attention`` op (its QKV weights would stay fp32), and the fused graphs measured
    slower once QDQ-quantized (benchmarks/README.md); ONNX Runtime fuses the QDQ pairs
    into integer ops at load."""
    reference = onnx_reference(reference, context, "onnx-int8-static")
    texts = context.calibration_texts()  # the plan has checked there are enough
    text_hash = hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()
    source = unfused_artefact(reference, context)
    kept = excluded_layers(source, context)

    def build(folder: Path) -> dict:
        quantize_calibrated(reference, context, source, texts, text_hash, name,
                            folder / "model.onnx",
                            nodes_to_exclude=[layer.name for layer in kept])
        _copy_side_files(source, folder)
        return _finish(_with_kept({
            "name": "onnx-int8-static",
            "method": "onnxruntime.quantization.quantize_static of the unfused "
                      "torch.onnx.export(dynamo=False) graph (QDQ cannot quantize a fused "
                      "Attention), QDQ, MinMax calibration, per-channel QInt8 weights, "
                      "QUInt8 activations; MatMul, Gemm and Gather (embeddings)",
            "calibration_rows": len(texts), "calibration_sha256": text_hash,
            "graph_fusions": {}, "fusion_warning": None}, kept, context), folder)

    key = (f"onnx-int8-static-"
           f"{_key(reference, versions(), EXPORT, text_hash, *_kept_key(kept))}")
    try:
        return _load(name, reference, cached_artefact(context, key, build))
    except (OSError, RuntimeError) as exc:
        raise ModelError(f"{context.artefact_dir}: static quantization failed ({exc})") from exc
