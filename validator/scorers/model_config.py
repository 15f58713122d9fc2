"""A model directory's config.json, range-checked before anything is built from it.

transformers sizes tensors and label tables from config.json alone: ``num_labels:
1e12`` once took 90 s and 9 GB before any error, an ``id2label`` naming output 9 of a
2-output model failed as an IndexError after scoring, and a label count that differs
from the weights' output layer failed inside transformers with "look at the above
report!". Here the file is read under a byte bound, the sizes it declares are checked
against fixed ranges, ``id2label`` must number the outputs 0..n-1, and the label count
must equal the rows of the weights' output layer (read from the safetensors header, no
weights loaded). Each error names the file and the key.
"""

from __future__ import annotations

import json
from pathlib import Path

from validator.bounded_yaml import read_bounded_text
from validator.errors import ModelError, first_line

MAX_CONFIG_BYTES = 1024 * 1024
MAX_OUTPUTS = 1024
SIZE_LIMITS = {  # key -> the largest value a text scorer's config plausibly declares
    "num_labels": MAX_OUTPUTS, "vocab_size": 4_194_304, "hidden_size": 65_536,
    "intermediate_size": 262_144, "num_hidden_layers": 512, "num_attention_heads": 1_024,
    "max_position_embeddings": 4_194_304, "type_vocab_size": 1_024,
}
HEAD_NAMES = ("classifier.out_proj.weight", "classifier.weight", "score.weight")  # BERT,
# RoBERTa, DeBERTa, DistilBERT classifiers; decoder models' ``score``
EMBEDDING_NAMES = ("word_embeddings.weight", "embed_tokens.weight")  # encoders; decoders
HIDDEN_KEYS = ("hidden_size", "dim", "d_model")  # BERT-likes; DistilBERT; others


def read_model_config(config_path: Path) -> dict:
    """config.json as a dict, every declared size in range, ``id2label`` well formed."""
    text = read_bounded_text(config_path, ModelError, "model config", MAX_CONFIG_BYTES)
    try:
        config = json.loads(text)
    except RecursionError as exc:
        raise ModelError(f"{config_path}: cannot load the model config (nested too deep)") \
            from exc
    except ValueError as exc:
        raise ModelError(f"{config_path}: cannot load the model config ({first_line(exc)})") \
            from exc
    if not isinstance(config, dict):
        raise ModelError(f"{config_path}: the model config must be a JSON object")
    for key, limit in SIZE_LIMITS.items():
        value = config.get(key)
        if key in config and (isinstance(value, bool) or not isinstance(value, int)
                              or not 1 <= value <= limit):
            raise ModelError(f"{config_path}: {key}: must be a whole number from 1 to "
                             f"{limit:,}, got {value!r}")
    labels = config_labels(config, config_path)
    if "num_labels" in config and "id2label" in config and config["num_labels"] != len(labels):
        raise ModelError(f"{config_path}: num_labels is {config['num_labels']} but id2label "
                         f"names {len(labels)} labels")
    return config


def config_labels(config: dict, config_path: Path) -> dict[str, str]:
    """``id2label`` as {"0": name, ...} numbering the outputs 0..n-1 (transformers'
    LABEL_i names from ``num_labels`` when absent)."""
    raw = config.get("id2label")
    if raw is None:
        return {str(i): f"LABEL_{i}" for i in range(config.get("num_labels", 2))}
    if not isinstance(raw, dict) or not 1 <= len(raw) <= MAX_OUTPUTS:
        raise ModelError(f"{config_path}: id2label: must map output indexes to names "
                         f"(1 to {MAX_OUTPUTS} entries)")
    expected = {str(i) for i in range(len(raw))}
    stray = sorted(set(map(str, raw)) - expected)
    if stray:
        raise ModelError(f"{config_path}: id2label: key {stray[0]!r} is not an output of the "
                         f"model, whose {len(raw)} outputs are numbered 0-{len(raw) - 1}")
    return {str(k): str(v) for k, v in raw.items()}


def first_tensor(weight_files: list[Path], names: tuple[str, ...]) -> tuple[str, list] | None:
    """(tensor name, shape) of the first of ``names`` (in their order) that a tensor in
    the safetensors headers is called or ends with, or None; no weights are loaded."""
    from safetensors import safe_open

    found = {}
    for weights in weight_files:
        with safe_open(str(weights), framework="numpy") as handle:
            for name in handle.keys():
                for wanted in names:
                    if name == wanted or name.endswith("." + wanted):
                        found.setdefault(wanted, (name, handle.get_slice(name).get_shape()))
    return next((found[wanted] for wanted in names if wanted in found), None)


def head_width(weight_files: list[Path]) -> tuple[str, int] | None:
    """(tensor name, rows) of the classification head in the safetensors headers, or
    None when no tensor has a known head name."""
    head = first_tensor(weight_files, HEAD_NAMES)
    return (head[0], int(head[1][0])) if head is not None and len(head[1]) == 2 else None


def check_config_matches_weights(config_path: Path, config: dict, labels: dict,
                                 weight_files: list[Path]) -> None:
    """The outputs config.json declares are the head's rows, and its vocabulary and
    hidden sizes are the embedding table's (transformers allocates what config.json
    declares before it reads a weight: vocab_size and hidden_size each in range once
    asked for 17 GB)."""
    head = head_width(weight_files)
    if head is not None and head[1] != len(labels):
        raise ModelError(f"{config_path}: id2label/num_labels declare {len(labels)} outputs "
                         f"but the weights' output layer {head[0]} has {head[1]}")
    table = first_tensor(weight_files, EMBEDDING_NAMES)
    if table is None or len(table[1]) != 2:
        return
    hidden_key = next((k for k in HIDDEN_KEYS if k in config), None)
    for key, size in (("vocab_size", table[1][0]), (hidden_key, table[1][1])):
        if key is not None and key in config and config[key] != size:
            raise ModelError(f"{config_path}: {key} is {config[key]:,} but the weights' "
                             f"embedding table {table[0]} has {int(size):,}")
