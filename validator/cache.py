"""The on-disk cache: assembled models, recipe artefacts and predictions.

Predictions are stored per scorer fingerprint (a hash of everything that determines
its outputs) and per row (a hash of the text), in chunk files written atomically
while scoring runs, so an interrupted run resumes where it stopped. Each chunk file
is named by the sha256 of its bytes: a chunk whose bytes no longer match its name is
corrupt, and is deleted and recomputed, never used. A prediction fingerprint covers the
model's bytes and settings, the harness version, the device, the batch size (dynamic
INT8 quantizes activations per batch) and the runtime libraries' versions.

Folders built into the cache (recipe artefacts, the assembled default scorer) carry a
manifest of their files' sha256; a folder whose files no longer match it is rebuilt,
never used.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from validator import __version__
from validator.cpu import kernel_tag

FLUSH_ROWS = 512


def cache_root() -> Path:
    return Path(os.environ.get("SLICE_VALIDATOR_CACHE",
                               Path.home() / ".cache" / "slice-validator"))


MANIFEST = "manifest.sha256"
CACHED_FOLDER_FORMAT = "manifest-v1"  # in the key of cached folders: older ones lack it


def prediction_fingerprint(model: str, **settings: str | int | None) -> str:
    """The key of a scorer's cached predictions: its model fingerprint (weights, files and
    settings) plus ``settings`` (device, batch size, libraries), the harness version and
    the CPU's kernel-selecting features (``cpu.kernel_tag``: INT8 kernels differ by ISA)."""
    payload = json.dumps({"model": model, "harness": __version__, "kernels": kernel_tag(),
                          **settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _contents(folder: Path) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir())
            if p.is_file() and p.name != MANIFEST}


def write_manifest(folder: Path) -> None:
    """Record the sha256 of every file in ``folder`` (last step of building it)."""
    lines = [f"{digest}  {name}\n" for name, digest in _contents(folder).items()]
    (folder / MANIFEST).write_text("".join(lines), encoding="utf-8")


def verify_manifest(folder: Path) -> bool:
    """Whether ``folder`` holds exactly the files its manifest lists, byte for byte."""
    try:
        listed = dict(reversed(line.split("  ", 1)) for line in
                      (folder / MANIFEST).read_text(encoding="utf-8").splitlines())
        return bool(listed) and listed == _contents(folder)
    except (OSError, ValueError):
        return False


def row_keys(texts: list[str]) -> np.ndarray:
    return np.array([hashlib.sha1(t.encode("utf-8")).digest() for t in texts], dtype="S20")


class ChunkWriter:
    """Buffers scored rows and writes them as content-addressed chunk files."""

    def __init__(self, folder: Path, flush_rows: int = FLUSH_ROWS):
        self.folder, self.flush_rows = folder, flush_rows
        self.keys: list[np.ndarray] = []
        self.values: list[np.ndarray] = []

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        self.keys.append(keys)
        self.values.append(values)
        if sum(len(k) for k in self.keys) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if not self.keys:
            return
        buffer = io.BytesIO()
        np.savez(buffer, keys=np.concatenate(self.keys), values=np.concatenate(self.values))
        payload = buffer.getvalue()
        self.folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(payload).hexdigest()[:32] + ".npz"
        handle, temporary = tempfile.mkstemp(prefix=".chunk-", dir=self.folder)
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
        os.replace(temporary, self.folder / name)
        self.keys, self.values = [], []


class PredictionCache:
    def __init__(self, root: Path, flush_rows: int = FLUSH_ROWS):
        self.root = root / "predictions"
        self.flush_rows = flush_rows  # rows per chunk: how much an interruption can lose

    def _chunks(self, folder: Path, width: int):
        for path in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
            payload = path.read_bytes()
            try:
                if hashlib.sha256(payload).hexdigest()[:32] != path.stem:
                    raise ValueError("content does not match its hash")
                with np.load(io.BytesIO(payload), allow_pickle=False) as data:
                    keys, values = data["keys"], data["values"]
                if values.ndim != 2 or values.shape != (len(keys), width):
                    raise ValueError("unexpected shape")
            except (ValueError, KeyError, OSError):
                path.unlink(missing_ok=True)  # corrupt: recompute, never use
                continue
            yield keys, values

    def lookup(self, fingerprint: str, keys: np.ndarray,
               width: int) -> tuple[np.ndarray, np.ndarray]:
        """(values with NaN where missing, found mask) for the rows ``keys``."""
        positions: dict[bytes, list[int]] = {}
        for i, key in enumerate(keys.tolist()):  # the same text may occur in many rows
            positions.setdefault(key, []).append(i)
        values = np.full((len(keys), width), np.nan)
        found = np.zeros(len(keys), dtype=bool)
        for chunk_keys, chunk_values in self._chunks(self.root / fingerprint, width):
            for key, row in zip(chunk_keys.tolist(), chunk_values):
                for i in positions.get(key, ()):
                    values[i], found[i] = row, True
        return values, found

    def writer(self, fingerprint: str) -> ChunkWriter:
        return ChunkWriter(self.root / fingerprint, self.flush_rows)
