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

A chunk keeps the batch each row was scored in (``groups``), so a run can score a
drawn batch again in the same composition and compare (validator.cache_check: dynamic
INT8 predictions depend on the batch). With ``SLICE_VALIDATOR_CACHE_KEY`` set, every
chunk and folder manifest is signed (HMAC-SHA256, a ``.sig`` file beside it) and one
unsigned or mis-signed is discarded (chunks: deleted and their rows scored again;
folders: rebuilt).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from validator import __version__
from validator.cpu import kernel_tag
from validator.errors import ValidatorError

FLUSH_ROWS = 512
CHUNK_FORMAT = "grouped-v2"  # in every prediction key: chunks record their batches
KEY_VARIABLE = "SLICE_VALIDATOR_CACHE_KEY"


def cache_root() -> Path:
    """The cache folder (``SLICE_VALIDATOR_CACHE``, else ~/.cache/slice-validator); exit 2
    naming the variable when it points at something that is not a folder."""
    configured = os.environ.get("SLICE_VALIDATOR_CACHE")
    root = Path(configured) if configured else Path.home() / ".cache" / "slice-validator"
    if root.exists() and not root.is_dir():
        where = f"SLICE_VALIDATOR_CACHE={configured}" if configured else str(root)
        raise ValidatorError(f"{where}: the prediction cache must be a folder, but this is "
                             f"a file; point SLICE_VALIDATOR_CACHE at a folder")
    return root


def signing_key() -> bytes | None:
    key = os.environ.get(KEY_VARIABLE)
    return key.encode("utf-8") if key else None


def signature(payload: bytes, key: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def sign_file(path: Path) -> None:
    """Write ``path``.sig when a key is set (the last step of writing ``path``)."""
    key = signing_key()
    if key is not None:
        path.with_name(path.name + ".sig").write_text(signature(path.read_bytes(), key))


def signed(path: Path, payload: bytes) -> bool:
    """Whether ``path`` (bytes ``payload``) carries a valid signature; True without key."""
    key = signing_key()
    if key is None:
        return True
    try:
        stored = path.with_name(path.name + ".sig").read_text().strip()
    except OSError:
        return False
    return hmac.compare_digest(stored, signature(payload, key))


MANIFEST = "manifest.sha256"
CACHED_FOLDER_FORMAT = "manifest-v1"  # in the key of cached folders: older ones lack it


def prediction_fingerprint(model: str, **settings: str | int | None) -> str:
    """The key of a scorer's cached predictions: its model fingerprint (weights, files and
    settings) plus ``settings`` (device, batch size, libraries), the harness version and
    the CPU's kernel-selecting features (``cpu.kernel_tag``: INT8 kernels differ by ISA)."""
    payload = json.dumps({"model": model, "harness": __version__, "kernels": kernel_tag(),
                          "chunks": CHUNK_FORMAT, **settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _contents(folder: Path) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir())
            if p.is_file() and p.name not in (MANIFEST, MANIFEST + ".sig")}


def write_manifest(folder: Path) -> None:
    """Record the sha256 of every file in ``folder`` (last step of building it)."""
    lines = [f"{digest}  {name}\n" for name, digest in _contents(folder).items()]
    (folder / MANIFEST).write_text("".join(lines), encoding="utf-8")
    sign_file(folder / MANIFEST)


def verify_manifest(folder: Path) -> bool:
    """Whether ``folder`` holds exactly the files its manifest lists, byte for byte (and,
    with a key, the manifest is signed with it)."""
    try:
        payload = (folder / MANIFEST).read_bytes()
        listed = dict(reversed(line.split("  ", 1)) for line in
                      payload.decode("utf-8").splitlines())
        return bool(listed) and listed == _contents(folder) and signed(folder / MANIFEST,
                                                                      payload)
    except (OSError, ValueError):
        return False


def row_keys(texts: list[str]) -> np.ndarray:
    return np.array([hashlib.sha1(t.encode("utf-8")).digest() for t in texts], dtype="S20")


class ChunkWriter:
    """Buffers scored rows, one batch at a time, and writes them as content-addressed
    chunk files (keys, values and each row's batch within the chunk)."""

    def __init__(self, folder: Path, flush_rows: int = FLUSH_ROWS):
        self.folder, self.flush_rows = folder, flush_rows
        self.keys: list[np.ndarray] = []
        self.values: list[np.ndarray] = []

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        """One batch, as the scorer scored it (rows in the order it ran them)."""
        self.keys.append(keys)
        self.values.append(values)
        if sum(len(k) for k in self.keys) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if not self.keys:
            return
        groups = np.concatenate([np.full(len(k), i) for i, k in enumerate(self.keys)])
        buffer = io.BytesIO()
        np.savez(buffer, keys=np.concatenate(self.keys), values=np.concatenate(self.values),
                 groups=groups)
        payload = buffer.getvalue()
        self.folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(payload).hexdigest()[:32] + ".npz"
        handle, temporary = tempfile.mkstemp(prefix=".chunk-", dir=self.folder)
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
        key = signing_key()
        if key is not None:  # the signature first: a chunk is never seen unsigned
            (self.folder / (name + ".sig")).write_text(signature(payload, key))
        os.replace(temporary, self.folder / name)
        self.keys, self.values = [], []


class Chunk:
    """One chunk file read back: its rows and the batch each was scored in."""

    def __init__(self, path: Path, keys: np.ndarray, values: np.ndarray, groups: np.ndarray):
        self.path, self.keys, self.values, self.groups = path, keys, values, groups

    def batches(self) -> dict[int, np.ndarray]:
        """Row positions of each batch, in the order the scorer ran them."""
        return {int(g): np.flatnonzero(self.groups == g) for g in np.unique(self.groups)}


class PredictionCache:
    def __init__(self, root: Path, flush_rows: int = FLUSH_ROWS):
        self.root = root / "predictions"
        self.flush_rows = flush_rows  # rows per chunk: how much an interruption can lose
        self.unsigned: dict[str, int] = {}  # fingerprint -> chunks discarded (no/bad HMAC)

    def _read(self, path: Path, width: int) -> Chunk | None:
        payload = path.read_bytes()
        try:
            if hashlib.sha256(payload).hexdigest()[:32] != path.stem:
                raise ValueError("content does not match its hash")
            with np.load(io.BytesIO(payload), allow_pickle=False) as data:
                keys, values, groups = data["keys"], data["values"], data["groups"]
            if values.ndim != 2 or values.shape != (len(keys), width) or \
                    groups.shape != (len(keys),):
                raise ValueError("unexpected shape")
        except (ValueError, KeyError, OSError):
            self.discard(path)  # corrupt: recompute, never use
            return None
        if not signed(path, payload):
            self.unsigned[path.parent.name] = self.unsigned.get(path.parent.name, 0) + 1
            self.discard(path)
            return None
        return Chunk(path, keys, values, groups)

    def chunks(self, fingerprint: str, width: int) -> list[Chunk]:
        folder = self.root / fingerprint
        found = [self._read(path, width) for path in sorted(folder.glob("*.npz"))] \
            if folder.is_dir() else []
        return [chunk for chunk in found if chunk is not None]

    @staticmethod
    def discard(path: Path) -> None:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".sig").unlink(missing_ok=True)

    def writer(self, fingerprint: str) -> ChunkWriter:
        return ChunkWriter(self.root / fingerprint, self.flush_rows)
