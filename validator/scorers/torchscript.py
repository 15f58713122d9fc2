"""``runtime: torchscript``: run a torch model as a frozen TorchScript trace.

This is how torch models, quantized ones included, are commonly served (the PyTorch
dynamic-quantization tutorial ships BERT this way): the trace drops the per-module
Python overhead that dominates batch-1 latency on short texts. A trace records one
path through the model, so it is checked against the eager model on batches of other
shapes, with and without padding, and refused when it does not reproduce it.
"""

from __future__ import annotations

import warnings
from typing import Callable

from validator.errors import ModelError, first_line

TRACE_TEXTS = ["an example", "a second, longer example text for the padded row"]
CHECK_BATCHES = [["one"],
                 ["Free shipping on every order this weekend only, no code needed",
                  "Shop now", "Last chance: 20% off ends tonight"]]
TOLERANCE = 1e-4  # max |traced - eager| on the check batches, relative to max(1, |eager|)

Forward = Callable[[dict], "object"]  # tensors by input name -> logits tensor


def _inputs(tokenizer, texts: list[str], device: str) -> dict:
    """Tensors as the harness passes them: token ids padded, with their attention mask."""
    batch = tokenizer.pad({"input_ids": tokenizer(texts)["input_ids"]}, return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items() if k in tokenizer.model_input_names}


def _logits(output):
    return output["logits"] if isinstance(output, dict) else output[0]


def trace(model, tokenizer, device: str, label: str) -> Forward:
    """A verified frozen trace of ``model`` as a forward function; ModelError if the trace
    fails or disagrees with the eager model."""
    import torch

    example = _inputs(tokenizer, TRACE_TEXTS, device)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # tracer and deprecation warnings; checked below
            traced = torch.jit.freeze(torch.jit.trace(model, example_kwarg_inputs=example,
                                                      strict=False).eval())
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ModelError(f"{label}: runtime 'torchscript' cannot trace the model "
                         f"({first_line(exc)}); use runtime: eager") from exc

    def forward(inputs: dict):
        return _logits(traced(**inputs))

    for texts in CHECK_BATCHES:
        inputs = _inputs(tokenizer, texts, device)
        with torch.inference_mode():
            eager, scripted = model(**inputs).logits.float(), forward(inputs).float()
        difference = float((scripted - eager).abs().max())
        if not difference <= TOLERANCE * max(1.0, float(eager.abs().max())):
            raise ModelError(f"{label}: the TorchScript trace does not reproduce the eager "
                             f"model (max difference {difference:.3g} on a batch of "
                             f"{len(texts)}); use runtime: eager")
    return forward
