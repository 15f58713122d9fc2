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
import re
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
FEED_FORWARD_NAMES = ("intermediate.dense.weight", "ffn.lin1.weight", "mlp.fc1.weight",
                      "mlp.up_proj.weight")  # BERT-likes; DistilBERT; others: (ff, hidden)
FEED_FORWARD_KEYS = ("intermediate_size", "hidden_dim", "ffn_dim")
LAYER_KEYS = ("num_hidden_layers", "n_layers", "num_layers", "n_layer")
LAYER_INDEX = re.compile(r"(?:^|\.)(?:layer|layers|h|block)\.(\d+)\.")


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


def header_shapes(weight_files: list[Path]) -> dict[str, list]:
    """Every tensor's name and shape, from the safetensors headers alone (no weights)."""
    from safetensors import safe_open

    shapes = {}
    for weights in weight_files:
        with safe_open(str(weights), framework="numpy") as handle:
            for name in handle.keys():
                shapes.setdefault(name, handle.get_slice(name).get_shape())
    return shapes


def first_tensor(shapes: dict[str, list], names: tuple[str, ...]) -> tuple[str, list] | None:
    """(tensor name, shape) of the first of ``names`` (in their order) that a tensor is
    called or ends with, or None."""
    for wanted in names:
        for name, shape in shapes.items():
            if name == wanted or name.endswith("." + wanted):
                return name, shape
    return None


def check_config_matches_weights(config_path: Path, config: dict, labels: dict,
                                 weight_files: list[Path]) -> None:
    """What config.json declares is what the weights hold, read from the safetensors
    headers before transformers allocates anything from config.json alone: the outputs
    are the head's rows; the vocabulary, hidden and feed-forward sizes are the embedding
    table's and the first feed-forward layer's; there are no more layers than the
    weights number (each size in range, together they once asked for 17 GB, and 512
    layers the weights lack for 34 GB)."""
    shapes = header_shapes(weight_files)
    head = first_tensor(shapes, HEAD_NAMES)
    if head is not None and len(head[1]) == 2 and head[1][0] != len(labels):
        raise ModelError(f"{config_path}: id2label/num_labels declare {len(labels)} outputs "
                         f"but the weights' output layer {head[0]} has {head[1][0]}")
    expected = [(EMBEDDING_NAMES, "vocab_size", 0), (EMBEDDING_NAMES, HIDDEN_KEYS, 1),
                (FEED_FORWARD_NAMES, FEED_FORWARD_KEYS, 0)]
    for names, keys, axis in expected:
        found = first_tensor(shapes, names)
        key = declared(config, config_path, (keys,) if isinstance(keys, str) else keys)
        if found is not None and len(found[1]) == 2 and key is not None \
                and config[key] != found[1][axis]:
            raise ModelError(f"{config_path}: {key} is {config[key]:,} but the weights' "
                             f"{found[0]} has {int(found[1][axis]):,}")
    layers = {int(m.group(1)) for name in shapes if (m := LAYER_INDEX.search(name))}
    key = declared(config, config_path, LAYER_KEYS)
    if layers and key is not None and config[key] > len(layers):
        raise ModelError(f"{config_path}: {key} is {config[key]:,} but the weights hold "
                         f"{len(layers)} layers")


def declared(config: dict, config_path: Path, keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` config.json sets (a whole number), or None."""
    key = next((k for k in keys if k in config), None)
    if key is not None and (isinstance(config[key], bool) or not isinstance(config[key], int)):
        raise ModelError(f"{config_path}: {key}: must be a whole number, got {config[key]!r}")
    return key
