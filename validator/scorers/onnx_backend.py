"""The ``onnxruntime`` backend: a ``.onnx`` file (fp32 or quantized) plus its tokenizer.

``model`` names the ``.onnx`` file or a folder holding exactly one. The tokenizer files
and a ``config.json`` naming the outputs (``id2label``, or mapped by the scorer's
``outputs``) sit beside it, as ``validator quantize`` writes them.
``graph_optimization`` (disabled, basic, extended, all) is applied to the session and
recorded, since it can move quantized accuracy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from validator.cache import prediction_fingerprint
from validator.errors import ModelError, first_line
from validator.scorers.batched import BatchedScorer, check_tokenizer_fits, fingerprint_files
from validator.scorers.model_config import read_model_config
from validator.scorers.output_map import OutputMap, resolve_outputs

GRAPH_OPTIMIZATION = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                      "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
SIDE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
              "special_tokens_map.json")


def shrinking_arena():
    """Run options that hand the CPU arena's unused chunks back after each run: without
    them the arena keeps the largest batch's activations (about 300 MB for the default
    scorer at batch 32 and 256 tokens) for the life of the process; measured no slower."""
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


class OnnxScorer(BatchedScorer):
    backend = "onnxruntime"

    def __init__(self, name, dimensions, session, tokenizer, outputs, batch_size,
                 max_length, onnx_file: Path, graph_optimization: str, fingerprint: str,
                 recipe=None, tokens=None):
        super().__init__(name, dimensions, tokenizer, outputs, batch_size, max_length,
                         recipe, onnx_file.parent, tokens)
        self.session, self.onnx_file = session, onnx_file
        self.graph_optimization = graph_optimization
        self.input_names = [i.name for i in session.get_inputs()]
        self._fingerprint = fingerprint
        self.run_options = shrinking_arena()
        self.device = "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self._session_threads = os.cpu_count() or 1

    def set_threads(self, threads: int) -> None:
        if threads != self._session_threads:  # a Ray actor's CPU share
            self.session = open_session(self.onnx_file, self.graph_optimization, self.device,
                                        threads)
            self._session_threads = threads

    def __getstate__(self) -> dict:
        """For a Ray actor: the model file's bytes (and its external data), no session."""
        folder = self.onnx_file.parent
        files = {name: (folder / name).read_bytes()
                 for name in [self.onnx_file.name, *external_files(self.onnx_file)]}
        return {**super().__getstate__(), "session": None, "run_options": None,
                "onnx_file": files}

    def __setstate__(self, state: dict) -> None:
        import tempfile

        files = state.pop("onnx_file")
        super().__setstate__(state)
        self._folder = tempfile.TemporaryDirectory(prefix="slice-validator-onnx-")
        for name, data in files.items():
            (Path(self._folder.name) / name).write_bytes(data)
        self.onnx_file = Path(self._folder.name) / next(iter(files))
        self._session_threads = None  # opened by set_threads, with the actor's threads
        self.run_options = shrinking_arena()

    def run_batch(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        feed = {name: batch.get(name, np.zeros_like(batch["input_ids"]))
                for name in self.input_names}
        return np.asarray(self.session.run(None, feed, self.run_options)[0], dtype=np.float64)

    def fingerprint(self) -> str:
        import onnxruntime as ort

        return prediction_fingerprint(self._fingerprint, device=self.session.get_providers()[0],
                                      batch_size=self.batch_size,
                                      libraries=f"onnxruntime {ort.__version__}")

    def device_label(self) -> str:
        return self.device

    def serving_spec(self) -> dict:
        return {"name": self.name, "backend": self.backend, "path": str(self.onnx_file),
                "graph_optimization": self.graph_optimization,
                "batch_size": self.batch_size, "max_length": self.max_length}

    def size_bytes(self) -> int:
        return self.onnx_file.stat().st_size

    def parameter_bytes(self) -> int:
        import onnx

        model = onnx.load(str(self.onnx_file), load_external_data=False)
        return sum(len(init.raw_data) for init in model.graph.initializer)


def find_onnx_file(path: Path) -> Path:
    if path.is_file():
        if path.suffix != ".onnx":
            raise ModelError(f"{path}: not an .onnx file")
        return path
    if not path.is_dir():
        raise ModelError(f"{path}: ONNX model file or folder not found")
    candidates = sorted(path.glob("*.onnx"))
    if len(candidates) != 1:
        raise ModelError(f"{path}: expected exactly one .onnx file in the folder, found "
                         f"{len(candidates)}")
    return candidates[0]


def external_files(onnx_file: Path) -> list[str]:
    """The files beside ``onnx_file`` holding its external weights, if any."""
    import onnx

    graph = onnx.load(str(onnx_file), load_external_data=False).graph
    return sorted({entry.value for tensor in graph.initializer
                   if tensor.data_location == onnx.TensorProto.EXTERNAL
                   for entry in tensor.external_data if entry.key == "location"})


def open_session(onnx_file: Path, graph_optimization: str, device: str,
                 threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                               GRAPH_OPTIMIZATION[graph_optimization])
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(onnx_file), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelError(f"{onnx_file}: cannot load the ONNX model "
                         f"({first_line(exc)[:300]})") from exc


def read_side_config(onnx_file: Path) -> dict:
    """The config.json beside the .onnx file, which must name the outputs (id2label)."""
    config_path = onnx_file.parent / "config.json"
    if not config_path.is_file():
        raise ModelError(f"{config_path}: missing; an ONNX model needs a config.json beside it "
                         f"naming its outputs (id2label)")
    config = read_model_config(config_path)
    if "id2label" not in config:
        raise ModelError(f"{config_path}: no id2label naming the model's outputs")
    return config


def load_side_files(onnx_file: Path):
    """(config dict, tokenizer) from the files beside the .onnx file."""
    from transformers import AutoTokenizer

    config = read_side_config(onnx_file)
    try:
        tokenizer = AutoTokenizer.from_pretrained(onnx_file.parent, local_files_only=True,
                                                  trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{onnx_file.parent}: cannot load the tokenizer ({exc})") from exc
    return config, tokenizer


def check_outputs(onnx_file: Path, shape, labels: int) -> None:
    """``shape``: the first output's, as ONNX declares it (dimensions may be symbolic)."""
    width = shape[-1] if shape else None
    if isinstance(width, int) and width != labels:
        raise ModelError(f"{onnx_file}: the model has {width} outputs but config.json id2label "
                         f"names {labels}")


def inspect_onnx(path: Path, dimensions: list[str], scorer_config,
                 scale: tuple[int, int]) -> None:
    """The cheap checks of an ONNX model (the plan step): the graph parses (weights in
    external files are not read), its output count matches config.json's id2label, and
    id2label maps onto every dimension."""
    import onnx

    onnx_file = find_onnx_file(path)
    config = read_side_config(onnx_file)
    try:
        graph = onnx.load(str(onnx_file), load_external_data=False).graph
    except Exception as exc:  # protobuf raises its own untyped errors for bad files
        raise ModelError(f"{onnx_file}: cannot load the ONNX model "
                         f"({first_line(exc)[:300]})") from exc
    dims = graph.output[0].type.tensor_type.shape.dim if graph.output else []
    check_outputs(onnx_file, [d.dim_value if d.HasField("dim_value") else d.dim_param
                              for d in dims], len(config["id2label"]))
    resolve_outputs(onnx_file, config["id2label"], dimensions, scorer_config, scale)


def build_onnx_scorer(name: str, dimensions: list[str], onnx_file: Path, batch_size: int,
                      max_length: int | None, graph_optimization: str, device: str,
                      map_outputs: Callable[[dict], OutputMap], recipe: dict | None = None,
                      tokens=None) -> OnnxScorer:
    """``map_outputs(id2label)`` gives the output map (a recipe's: its reference's)."""
    import onnxruntime as ort

    config, tokenizer = load_side_files(onnx_file)
    session = open_session(onnx_file, graph_optimization, device)
    check_outputs(onnx_file, session.get_outputs()[0].shape, len(config["id2label"]))
    outputs = map_outputs(config["id2label"])
    if "vocab_size" in config:
        check_tokenizer_fits(onnx_file.parent, tokenizer, int(config["vocab_size"]))
    length = max_length or min(tokenizer.model_max_length,
                               config.get("max_position_embeddings", 512))
    side = [onnx_file.parent / f for f in SIDE_FILES if (onnx_file.parent / f).is_file()]
    fingerprint = fingerprint_files([onnx_file, *side], f"onnxruntime {ort.__version__}",
                                    graph_optimization, str(length), outputs.key)
    return OnnxScorer(name, dimensions, session, tokenizer, outputs, batch_size, length,
                      onnx_file, graph_optimization, fingerprint, recipe, tokens)


def load_onnx_scorer(scorer_config, dimensions: list[str],
                     scale: tuple[int, int]) -> OnnxScorer:
    onnx_file = find_onnx_file(Path(scorer_config.model))
    recipe_file = onnx_file.parent / "recipe.json"
    recipe = json.loads(recipe_file.read_text("utf-8")) if recipe_file.is_file() else None
    return build_onnx_scorer(
        scorer_config.name, dimensions, onnx_file, scorer_config.batch_size,
        scorer_config.max_length, scorer_config.graph_optimization, scorer_config.device,
        lambda labels: resolve_outputs(onnx_file, labels, dimensions, scorer_config, scale),
        recipe)
