"""What the model-backed scorers share: tokenise once, batch by length, map outputs.

Rows are sorted by token length so each batch pads little, scored batch by batch
(only one batch of tensors is alive at a time), and written back in their original
order. A reference and the candidates made from it share one tokenisation
(TokenCache).
"""

from __future__ import annotations

import hashlib
import os
from abc import abstractmethod
from pathlib import Path
from typing import Iterator

import numpy as np

from validator.errors import ModelError
from validator.scorers import BatchCallback, Scorer
from validator.scorers.output_map import OutputMap

Encodings = list[list[int]]
LENGTH_CHUNK = 10_000  # texts tokenised at a time when only their lengths are kept


class TokenCache:
    """Tokenisations shared by scorers with the same tokenizer and max_length."""

    def __init__(self):
        self._store: dict[tuple, Encodings] = {}

    @staticmethod
    def _key(scorer: "BatchedScorer", texts: list[str]) -> tuple:
        return (scorer.tokenizer_key, scorer.max_length, len(texts),
                hashlib.sha1("\0".join(texts).encode("utf-8")).hexdigest())

    def encode(self, scorer: "BatchedScorer", texts: list[str]) -> Encodings:
        key = self._key(scorer, texts)
        if key not in self._store:
            self._store[key] = scorer.encode(texts)
        return self._store[key]

    def lengths(self, scorer: "BatchedScorer", texts: list[str]) -> np.ndarray:
        """Token counts, tokenising in chunks when the encodings are not held (so a
        million rows ordered for the Ray engine never hold every encoding at once)."""
        key = self._key(scorer, texts)
        if key in self._store:
            return np.array([len(ids) for ids in self._store[key]])
        return np.concatenate([[len(ids) for ids in scorer.encode(texts[i:i + LENGTH_CHUNK])]
                               for i in range(0, len(texts), LENGTH_CHUNK)] or [[]])


def check_tokenizer_fits(path: Path, tokenizer, vocab_size: int) -> None:
    """A tokenizer with more ids than the model's embedding table is the wrong one; one
    without a padding token cannot put texts of different lengths in one batch."""
    if len(tokenizer) > vocab_size:
        raise ModelError(f"{path}: the tokenizer has {len(tokenizer)} tokens but the model's "
                         f"vocabulary has {vocab_size}; the tokenizer does not match the model")
    if getattr(tokenizer, "pad_token_id", None) is None:
        raise ModelError(f"{path}: the tokenizer has no padding token (set pad_token in its "
                         f"tokenizer files); texts of different lengths cannot share a batch")


def fingerprint_files(paths: list[Path], *extra: str) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()


def length_order(lengths) -> np.ndarray:
    """Rows by token length, ties in row order: batches pad little, deterministically."""
    return np.argsort(np.asarray(lengths), kind="stable")


def padded_batches(tokenizer, encodings: Encodings,
                   batch_size: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(row positions, padded int64 ``input_ids`` and ``attention_mask``) for rows sorted
    by token length, padded on the tokenizer's side with its pad token: what
    ``tokenizer.pad`` returns, written with numpy (about 6x faster: per-example Python
    in ``pad`` was a tenth of the speed probe's tokenising time)."""
    order = length_order([len(ids) for ids in encodings])
    left = getattr(tokenizer, "padding_side", "right") == "left"
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = max(len(encodings[i]) for i in rows)
        ids = np.full((len(rows), width), tokenizer.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for k, i in enumerate(rows):
            span = slice(width - len(encodings[i]), width) if left else \
                slice(0, len(encodings[i]))
            ids[k, span], mask[k, span] = encodings[i], 1
        yield rows, {"input_ids": ids, "attention_mask": mask}


class BatchedScorer(Scorer):
    """A tokenizer plus a model run on padded batches of token ids."""

    def __init__(self, name, dimensions, tokenizer, outputs: OutputMap, batch_size,
                 max_length, recipe=None, path: Path | None = None,
                 tokens: TokenCache | None = None):
        super().__init__(name, dimensions, recipe)
        self.tokenizer = tokenizer
        self.outputs = outputs  # model outputs -> rubric dimensions
        self.batch_size, self.max_length = batch_size, max_length
        self.path = path
        self.tokens = tokens or TokenCache()  # shared with the candidates made from it
        self._tokenizer_key: str | None = None

    def __getstate__(self) -> dict:
        """Pickled for Ray actors without the shared tokenisations (a fresh cache there)."""
        return {**self.__dict__, "tokens": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, tokens=TokenCache())

    @property
    def tokenizer_key(self) -> str:
        if self._tokenizer_key is None:
            backend = getattr(self.tokenizer, "backend_tokenizer", None)
            text = backend.to_str() if backend is not None else repr(self.tokenizer.get_vocab())
            self._tokenizer_key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return self._tokenizer_key

    @abstractmethod
    def run_batch(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Model outputs (batch, outputs) for one padded batch of numpy inputs."""

    def launch_batch(self, batch: dict[str, np.ndarray]):
        """Start one batch; ``collect`` its outputs. A runtime that queues work on a device
        (CUDA) returns before the work is done, so the next batch is padded meanwhile."""
        return self.run_batch(batch)

    def collect(self, launched) -> np.ndarray:
        """The outputs of a ``launch_batch``, on the host (waits for the device)."""
        return launched

    def synchronize(self) -> None:
        """Wait until the device has finished the work queued so far (timing bounds)."""

    def prepare(self, texts: list[str]) -> list[dict[str, np.ndarray]]:
        """Tokenised, length-sorted, padded batches of ``texts``, as serving prepares
        them (timed apart from the model's forward pass by the speed probe)."""
        return [batch for _, batch in padded_batches(self.tokenizer, self.encode(texts),
                                                     self.batch_size)]

    def forward(self, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """Every prepared batch through the model: all launched, then collected."""
        launched = [self.launch_batch(batch) for batch in batches]
        return [self.collect(item) for item in launched]

    def serve(self, texts: list[str]) -> list[np.ndarray]:
        """Texts to model outputs, as a serving instance answers one request batch."""
        return self.forward(self.prepare(texts))

    def encode(self, texts: list[str]) -> Encodings:
        return self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]

    def predict(self, texts: list[str], on_batch: BatchCallback | None = None) -> np.ndarray:
        encodings = self.tokens.encode(self, texts)
        self.set_threads(self.threads or os.cpu_count() or 1)
        out = np.empty((len(encodings), len(self.dimensions)), dtype=np.float64)
        for rows, batch in padded_batches(self.tokenizer, encodings, self.batch_size):
            out[rows] = self.outputs.apply(self.run_batch(batch))
            if on_batch is not None:
                on_batch(rows, out[rows])
        return out

    def batch_order(self, texts: list[str]) -> tuple[np.ndarray, int]:
        return length_order(self.tokens.lengths(self, texts)), self.batch_size
