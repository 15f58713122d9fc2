"""The ``transformers`` backend: any sequence-classification/regression model directory.

Loads from safetensors only (pickled ``.bin`` weights are refused), never with
``trust_remote_code``, never from the network. Outputs are matched to rubric
dimensions by the model's ``id2label`` names. Scoring tokenises once, sorts rows by
token length so batches need little padding, and restores the original order.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from validator.errors import ModelError
from validator.sample import Sample
from validator.scorers import ProgressFactory, Scorer, no_progress


class TransformersScorer(Scorer):
    backend = "transformers"

    def __init__(self, name, dimensions, model, tokenizer, output_index, batch_size,
                 max_length, recipe=None, path: Path | None = None):
        super().__init__(name, dimensions, recipe)
        self.model, self.tokenizer = model, tokenizer
        self.output_index = output_index  # model output column for each dimension
        self.batch_size, self.max_length = batch_size, max_length
        self.path = path

    def _forward(self, encodings: list[list[int]], progress) -> np.ndarray:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        order = np.argsort([len(ids) for ids in encodings], kind="stable")
        out = np.empty((len(encodings), len(self.dimensions)), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                batch = self.tokenizer.pad({"input_ids": [encodings[i] for i in rows]},
                                           return_tensors="pt")
                logits = self.model(**batch).logits.float().numpy()
                out[rows] = logits[:, self.output_index]
                progress(len(rows))
        return out

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]

    def score(self, sample: Sample, progress: ProgressFactory = no_progress) -> np.ndarray:
        encodings = self._encode(sample.texts)
        with progress(f"scoring {self.name}", len(encodings)) as advance:
            return self._forward(encodings, advance)

    def score_texts(self, texts: list[str]) -> np.ndarray:
        return self._forward(self._encode(texts), lambda n: None)

    def size_bytes(self) -> int:
        """Bytes of the serialized weights (quantized weights count packed)."""
        import torch

        buffer = io.BytesIO()
        torch.save(self.model.state_dict(), buffer)
        return buffer.getbuffer().nbytes


def _check_model_dir(path: Path) -> None:
    if not path.is_dir():
        raise ModelError(f"{path}: model directory not found")
    if not (path / "config.json").is_file():
        raise ModelError(f"{path}: no config.json; not a transformers model directory")
    if not any(path.glob("*.safetensors")):
        pickled = [p.name for p in path.glob("*.bin")]
        hint = f" (found {', '.join(pickled)}: pickled weights are refused)" if pickled else ""
        raise ModelError(f"{path}: no .safetensors weights{hint}")


def output_index(path: Path, id2label: dict, dimensions: list[str]) -> list[int]:
    labels = {str(label): int(index) for index, label in id2label.items()}
    if len(labels) != len(dimensions):
        raise ModelError(f"{path}: the model has {len(labels)} outputs but the rubric has "
                         f"{len(dimensions)} dimensions ({', '.join(dimensions)})")
    missing = [d for d in dimensions if d not in labels]
    if missing:
        raise ModelError(f"{path}: config.json id2label does not name dimension "
                         f"{missing[0]!r} (labels: {', '.join(labels)})")
    return [labels[d] for d in dimensions]


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
        model = AutoModelForSequenceClassification.from_pretrained(
            path, local_files_only=True, use_safetensors=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: cannot load the model ({first})") from exc
    return config, tokenizer, model.eval()


def load_transformers_scorer(scorer_config, dimensions: list[str]) -> TransformersScorer:
    if scorer_config.model == "default":
        from validator.scorers.default_model import default_model_dir
        path = default_model_dir()
    else:
        path = Path(scorer_config.model)
    config, tokenizer, model = load_model_dir(path)
    index = output_index(path, config.id2label, dimensions)
    max_length = scorer_config.max_length or min(
        tokenizer.model_max_length, getattr(config, "max_position_embeddings", 512))
    return TransformersScorer(scorer_config.name, dimensions, model, tokenizer, index,
                              scorer_config.batch_size, max_length, path=path)
