"""Export a transformers reference to ONNX and fuse its transformer subgraphs.

The TorchScript exporter (``dynamo=False``) with eager attention gives the graph
pattern ONNX Runtime's transformer optimizer (``onnxruntime.transformers.optimizer``)
recognises: for a BERT-family model it fuses each layer's attention into one
``Attention`` op, the embeddings and their LayerNorm into ``EmbedLayerNormalization``,
residual adds into ``SkipLayerNormalization`` and bias + GELU into ``BiasGelu``; the
dynamo exporter's graph gets no attention fusion. The fused graph is kept only when it
reproduces the unfused one within ``TOLERANCE`` on a check batch; an architecture the
optimizer does not know, or a fusion that fails or disagrees, leaves the unfused
graph with a recorded warning, never an error.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from validator.errors import first_line

OPSET = 17
TOLERANCE = 1e-4  # max |fused - unfused| on the check batch, relative to max(1, |unfused|)
# transformers model_type -> the optimizer's model type (BERT-family encoders)
OPTIMIZER_TYPES = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert",
                   "camembert": "bert", "distilbert": "bert", "electra": "bert",
                   "mpnet": "bert"}
CHECK_TEXTS = ["an example", "a second, longer example text for the padded row",
               "Free shipping on every order this weekend only, no code needed"]


def input_names(reference) -> list[str]:
    return [n for n in ("input_ids", "attention_mask", "token_type_ids")
            if n in reference.tokenizer.model_input_names]


def logits_module(model, names: list[str]):
    """The model as a module of positional inputs (in ``names`` order) returning its
    logits: the form torch.onnx.export traces."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs))).logits

    return Logits()


def export_torchscript(reference, onnx_file: Path) -> None:
    """torch.onnx.export (TorchScript, eager attention) with dynamic batch and sequence.
    The model's attention implementation and eval mode are restored afterwards (the
    exporter leaves the module in training mode)."""
    import torch

    names = input_names(reference)
    model = reference.model.float().cpu() if reference.device != "cpu" else reference.model
    attention = model.config._attn_implementation
    example = reference.tokenizer(CHECK_TEXTS[:2], padding=True, return_tensors="pt")
    try:
        model.set_attn_implementation("eager")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(logits_module(model, names), tuple(example[n] for n in names), str(onnx_file),
                              input_names=names, output_names=["logits"], dynamo=False,
                              opset_version=OPSET,
                              dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names},
                                            "logits": {0: "batch"}})
    finally:
        model.set_attn_implementation(attention)
        model.eval()
        if reference.device != "cpu":
            reference.model.to(reference.device)


def _outputs(onnx_file: Path, feed: dict) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in feed.items() if k in names})[0]


def _check_feed(reference) -> dict:
    batch = reference.tokenizer(CHECK_TEXTS, padding=True, return_tensors="np")
    feed = {k: np.asarray(v, dtype=np.int64) for k, v in batch.items()}
    feed.setdefault("token_type_ids", np.zeros_like(feed["input_ids"]))
    return feed


def fuse(reference, source: Path, target: Path) -> dict:
    """Write the fused graph of ``source`` to ``target`` (or a copy of ``source`` when it
    cannot be fused); returns ``{"graph_fusions": {op: count}, "fusion_warning": ...}``."""
    config = reference.model.config
    kind = OPTIMIZER_TYPES.get(config.model_type)
    if kind is None:
        target.write_bytes(source.read_bytes())
        return {"graph_fusions": {}, "fusion_warning":
                f"ONNX Runtime's transformer optimizer does not know architecture "
                f"{config.model_type!r}; the graph is unfused"}
    from onnxruntime.transformers.optimizer import optimize_model

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = optimize_model(str(source), model_type=kind, opt_level=0,
                                   num_heads=getattr(config, "num_attention_heads", 0),
                                   hidden_size=getattr(config, "hidden_size", 0))
            model.save_model_to_file(str(target))
        fusions = {k: v for k, v in model.get_fused_operator_statistics().items() if v}
        feed = _check_feed(reference)
        unfused, fused = _outputs(source, feed), _outputs(target, feed)
        difference = float(np.abs(fused - unfused).max())
        if not difference <= TOLERANCE * max(1.0, float(np.abs(unfused).max())):
            raise ValueError(f"the fused graph differs by {difference:.3g}")
    except Exception as exc:  # the optimizer raises untyped errors on unknown patterns
        target.write_bytes(source.read_bytes())
        return {"graph_fusions": {}, "fusion_warning": f"graph fusion failed "
                f"({first_line(exc)[:200] or type(exc).__name__}); the graph is unfused"}
    return {"graph_fusions": fusions, "fusion_warning": None}


def write_side_files(reference, target: Path) -> None:
    """config.json and the tokenizer, truncating as the reference does."""
    reference.model.config.to_json_file(str(target / "config.json"))
    reference.tokenizer.save_pretrained(str(target))
    settings_path = target / "tokenizer_config.json"  # the served model truncates alike
    settings = json.loads(settings_path.read_text(encoding="utf-8"))
    settings["model_max_length"] = reference.max_length
    settings_path.write_text(json.dumps(settings, indent=2), encoding="utf-8")
