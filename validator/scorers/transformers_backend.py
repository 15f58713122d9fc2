"""The ``transformers`` backend: any sequence-classification/regression model directory.

Loads from safetensors only (pickled ``.bin`` weights are refused), never with
``trust_remote_code``, never from the network. Outputs are matched to rubric
dimensions by the model's ``id2label`` names, or by the scorer's ``outputs`` map
(output_map.py). ``device: auto`` uses CUDA when present.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from validator.cache import prediction_fingerprint
from validator.errors import ConfigError, ModelError, first_line
from validator.scorers.batched import BatchedScorer, check_tokenizer_fits, fingerprint_files
from validator.scorers.model_config import (check_config_matches_weights, config_labels,
                                            read_model_config)
from validator.scorers.output_map import resolve_outputs

MODEL_FILES = ("*.safetensors", "config.json", "tokenizer*.json", "vocab.txt", "*.model",
               "merges.txt", "special_tokens_map.json")


def library_tag() -> str:
    import torch
    import transformers

    return f"torch {torch.__version__} transformers {transformers.__version__}"


def device_name(device: str) -> str:
    """The device as the predictions depend on it: a CUDA device by its model name."""
    import torch

    return f"cuda {torch.cuda.get_device_name(device)}" if device.startswith("cuda") else device


class TransformersScorer(BatchedScorer):
    backend = "transformers"

    def __init__(self, name, dimensions, model, tokenizer, outputs, batch_size,
                 max_length, recipe=None, path: Path | None = None,
                 model_fingerprint: str = "", device: str = "cpu", runtime: str = "eager",
                 label: str = "", tokens=None):
        super().__init__(name, dimensions, tokenizer, outputs, batch_size, max_length,
                         recipe, path, tokens)
        self.model, self.device, self.runtime = model, device, runtime
        self.model_fingerprint = model_fingerprint  # weights and settings, not the runtime
        self.label = label or name
        self.run_model = self._runner()  # tensors by input name -> logits

    def _runner(self):
        if self.runtime == "torchscript":
            from validator.scorers.torchscript import trace
            return trace(self.model, self.tokenizer, self.device, self.label)
        return self._eager

    def __getstate__(self) -> dict:
        """For a Ray actor: the model and settings; the trace is made again there."""
        return {**super().__getstate__(), "run_model": None}

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.run_model = self._runner()

    def _eager(self, inputs: dict):
        return self.model(**inputs).logits

    def set_threads(self, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)

    def _on_device(self, array: np.ndarray):
        """A host array on the model's device; to a GPU from pinned memory without
        waiting (a copy from pageable memory would wait for the queued batches)."""
        import torch

        tensor = torch.from_numpy(array)
        if self.device.startswith("cuda"):
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    def launch_batch(self, batch: dict[str, np.ndarray]):
        import torch

        inputs = {k: self._on_device(v) for k, v in batch.items()
                  if k in self.tokenizer.model_input_names}
        with torch.inference_mode():
            return self.run_model(inputs).float()

    def collect(self, launched) -> np.ndarray:
        return launched.cpu().numpy()

    def run_batch(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.collect(self.launch_batch(batch))

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)

    def device_label(self) -> str:
        return device_name(self.device)

    def compute_dtype(self) -> str:
        """The recipe's (quantized weights report their float type), else the dtype of
        the model's weights as loaded (a bf16 artefact is bfloat16)."""
        if self.recipe:
            return super().compute_dtype()
        floating = [p.dtype for p in self.model.parameters() if p.is_floating_point()]
        return str(floating[0]).removeprefix("torch.") if floating else "float32"

    def fingerprint(self) -> str:
        """The model, how it runs and how its outputs map: what determines the
        predictions."""
        return prediction_fingerprint(self.model_fingerprint, runtime=self.runtime,
                                      outputs=self.outputs.key,
                                      device=device_name(self.device),
                                      batch_size=self.batch_size, libraries=library_tag())

    def serving_spec(self) -> dict | None:
        """The model directory, plus the torch recipe a candidate re-applies to it."""
        if self.path is None:
            return None
        return {"name": self.name, "backend": self.backend, "path": str(self.path),
                "recipe": self.recipe["name"] if self.recipe else None,
                "runtime": self.runtime, "device": self.device,
                "batch_size": self.batch_size, "max_length": self.max_length}

    def derived_fingerprint(self, *parts: str) -> str:
        """The model fingerprint extended by ``parts`` (a recipe made from this model, the
        runtime)."""
        return hashlib.sha256("\0".join([self.model_fingerprint, *parts]).encode()).hexdigest()

    def size_bytes(self) -> int:
        if self.recipe is None and self.path is not None:
            return sum(p.stat().st_size for p in self.path.glob("*.safetensors"))
        import torch

        buffer = io.BytesIO()  # in-memory models (recipes): their serialized weights
        torch.save(self.model.state_dict(), buffer)
        return buffer.getbuffer().nbytes

    def parameter_bytes(self) -> int:
        import torch

        total = 0
        for value in self.model.state_dict().values():
            if isinstance(value, torch.Tensor):
                total += value.nelement() * value.element_size()
            elif isinstance(value, tuple):  # packed quantized Linear: (weight, bias)
                total += sum(t.nelement() * t.element_size() for t in value
                             if isinstance(t, torch.Tensor))
        return total


def _check_model_dir(path: Path) -> None:
    if not path.is_dir():
        raise ModelError(f"{path}: model directory not found")
    if not (path / "config.json").is_file():
        raise ModelError(f"{path}: no config.json; not a transformers model directory")
    if not any(path.glob("*.safetensors")):
        pickled = [p.name for p in path.glob("*.bin")]
        hint = f" (found {', '.join(pickled)}: pickled weights are refused)" if pickled else ""
        raise ModelError(f"{path}: no .safetensors weights{hint}")


def inspect_model_dir(path: Path, dimensions: list[str], scorer_config,
                      scale: tuple[int, int]) -> None:
    """The cheap checks of a model directory, without loading weights (the plan step):
    safetensors weights whose headers read, and ``id2label`` mapped onto every dimension
    (by name, or through the scorer's ``outputs``)."""
    from safetensors import SafetensorError, safe_open

    _check_model_dir(path)
    for weights in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="numpy"):
                pass
        except (OSError, SafetensorError) as exc:
            raise ModelError(f"{path}: cannot load the model ({weights.name}: "
                             f"{first_line(exc)})") from exc
    config_path = path / "config.json"
    config = read_model_config(config_path)
    labels = config_labels(config, config_path)
    check_config_matches_weights(config_path, config, labels, sorted(path.glob("*.safetensors")))
    resolve_outputs(path, labels, dimensions, scorer_config, scale)


def weights_dtype(path: Path):
    """The dtype config.json declares for the weights (``dtype``, or ``torch_dtype`` as
    transformers 4.x writes it), else ``"auto"`` (the checkpoint's own). Passed
    explicitly because transformers 4.x loads in float32 unless told: a bf16 artefact
    must be gated as bf16 on every supported version."""
    import torch

    raw = read_model_config(path / "config.json")
    name = raw.get("dtype") or raw.get("torch_dtype")
    wanted = getattr(torch, name, None) if isinstance(name, str) else None
    return wanted if isinstance(wanted, torch.dtype) and wanted.is_floating_point else "auto"


def dtype_argument() -> str:
    """``dtype`` since transformers 4.56; ``torch_dtype`` before."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def load_model_dir(path: Path):
    """(config, tokenizer, model) from a local directory, mapping library errors."""
    from safetensors import SafetensorError
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # our own progress goes to stderr
    transformers_logging.set_verbosity_error()
    _check_model_dir(path)
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True,
                                                  trust_remote_code=False)
        model, loading = AutoModelForSequenceClassification.from_pretrained(
            path, local_files_only=True, use_safetensors=True, trust_remote_code=False,
            output_loading_info=True, **{dtype_argument(): weights_dtype(path)})
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        reason = ("the weights' tensor sizes differ from what config.json declares"
                  if "ignore_mismatched_sizes" in str(exc) else first_line(exc))
        raise ModelError(f"{path}: cannot load the model ({reason})") from exc
    missing = sorted(loading.get("missing_keys") or [])
    if missing:  # transformers fills them with random values and carries on
        raise ModelError(f"{path}: the weights lack {len(missing)} tensors the model needs "
                         f"(first: {missing[0]}); they would be random")
    return config, tokenizer, model.eval()


def resolve_device(wanted: str, key: str) -> str:
    import torch

    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if wanted == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key}.device: 'cuda' requested but no CUDA device is available")
    return wanted


def model_dir_of(scorer_config) -> Path:
    if scorer_config.model == "default":
        from validator.scorers.default_model import default_model_dir
        return default_model_dir()
    return Path(scorer_config.model)


def load_transformers_scorer(scorer_config, dimensions: list[str],
                             scale: tuple[int, int]) -> TransformersScorer:
    path = model_dir_of(scorer_config)
    config, tokenizer, model = load_model_dir(path)
    outputs = resolve_outputs(path, config.id2label, dimensions, scorer_config, scale)
    check_tokenizer_fits(path, tokenizer, config.vocab_size)
    max_length = scorer_config.max_length or min(
        tokenizer.model_max_length, getattr(config, "max_position_embeddings", 512))
    device = resolve_device(scorer_config.device, scorer_config.key)
    runtime = scorer_config.runtime or "eager"
    files = [p for pattern in MODEL_FILES for p in path.glob(pattern)]
    fingerprint = fingerprint_files(files, library_tag(), str(max_length))
    return TransformersScorer(scorer_config.name, dimensions, model.to(device), tokenizer,
                              outputs, scorer_config.batch_size, max_length, path=path,
                              model_fingerprint=fingerprint, device=device, runtime=runtime,
                              label=f"{scorer_config.key} ({path})")
