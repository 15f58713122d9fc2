"""``device: auto`` on a CUDA machine (skipped where there is none, as in CI).

A tiny random BERT (with a WordPiece tokenizer built from a small vocabulary written
here, so only a GPU is needed, not the default encoder's package) is scored on the GPU
and on the CPU; recipes made from a GPU reference run where they should (torch INT8
dynamic on the CPU; bf16, fp16 and torchao INT8 on the GPU; the ONNX export from a CPU
copy), and leave the reference on the GPU. The speed probe's timing waits for the GPU.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

from validator.scorers import RecipeContext, no_progress  # noqa: E402
from validator.scorers.torch_recipes import (torch_bf16, torch_fp16,  # noqa: E402
                                             torch_int8_dynamic, torchao_int8_dynamic)
from validator.scorers.transformers_backend import load_transformers_scorer  # noqa: E402

DIMS = ["clarity", "tone", "compliance"]
TEXTS = ["Shop now", "A much longer piece of copy about hiking boots that keep you dry",
         "Free shipping 🎉", "Hi {first_name}, your order shipped.", "OK",
         "Last chance: 20% off ends tonight", "Envío gratis en todos los pedidos"]


def load(model_dir: Path, device: str, runtime: str = "eager"):
    config = SimpleNamespace(name=f"tiny-{device}", model=str(model_dir), batch_size=4,
                             max_length=64, key="reference", device=device, runtime=runtime,
                             outputs=None, output_scale=None)
    return load_transformers_scorer(config, DIMS, (1, 5))


def context(tmp_path: Path) -> RecipeContext:
    return RecipeContext("candidates[0]", list, tmp_path / "artefacts", no_progress)


WORDS = ["shop", "now", "free", "shipping", "on", "every", "order", "last", "chance", "off",
         "ends", "tonight", "a", "much", "longer", "piece", "of", "copy", "about", "hiking",
         "boots", "that", "keep", "you", "dry", "hi", "your", "shipped", "ok", "20", "%", ":",
         ",", ".", "{", "}", "_", "first", "name", "##s", "##ing", "##ed"]


def tiny_model_dir(path: Path) -> Path:
    """A tiny random BERT regression model and a WordPiece tokenizer over ``WORDS``."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"abcdefghijklmnopqrstuvwxyz"]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # positional: the argument is vocab_file in transformers 4.x, vocab in 5.x
    BertTokenizerFast(str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, num_labels=len(DIMS),
                        problem_type="regression", max_position_embeddings=128,
                        initializer_range=0.3, id2label=dict(enumerate(DIMS)),
                        label2id={d: i for i, d in enumerate(DIMS)})
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.bias.fill_(3.0)  # centre predictions on the rating scale
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("cuda") / "model")


def on_cuda(scorer) -> bool:
    return next(scorer.model.parameters()).is_cuda


@pytest.mark.parametrize("runtime", ["eager", "torchscript"])
def test_auto_runs_on_cuda_and_matches_the_cpu(model_dir, runtime):
    gpu, cpu = load(model_dir, "auto", runtime), load(model_dir, "cpu", runtime)
    assert gpu.device == "cuda" and on_cuda(gpu)
    np.testing.assert_allclose(gpu.predict(TEXTS), cpu.predict(TEXTS), atol=1e-4)


def test_int8_from_a_cuda_reference_runs_on_the_cpu(model_dir, tmp_path):
    reference = load(model_dir, "auto")
    candidate = torch_int8_dynamic("int8", reference, context(tmp_path))
    from_cpu = torch_int8_dynamic("int8", load(model_dir, "cpu"), context(tmp_path))
    assert candidate.device == "cpu" and on_cuda(reference)
    np.testing.assert_allclose(candidate.predict(TEXTS), from_cpu.predict(TEXTS),
                               atol=1e-5)


@pytest.mark.parametrize("recipe,dtype", [(torch_bf16, torch.bfloat16),
                                          (torch_fp16, torch.float16)])
def test_half_precision_from_a_cuda_reference_stays_on_cuda(model_dir, tmp_path, recipe, dtype):
    reference = load(model_dir, "auto")
    candidate = recipe("half", reference, context(tmp_path))
    assert candidate.device == "cuda" and on_cuda(candidate)
    assert next(candidate.model.parameters()).dtype == dtype
    assert candidate.compute_dtype() == str(dtype).removeprefix("torch.")
    assert candidate.device_label() == f"cuda {torch.cuda.get_device_name()}"
    difference = np.abs(candidate.predict(TEXTS) - reference.predict(TEXTS))
    assert 0 < difference.max() < 0.1


def test_torchao_int8_runs_on_cuda_and_keeps_excluded_layers(model_dir, tmp_path):
    pytest.importorskip("torchao")
    reference = load(model_dir, "auto")
    candidate = torchao_int8_dynamic("int8", reference, context(tmp_path))
    assert candidate.device == "cuda" and on_cuda(candidate)
    assert candidate.runtime == "eager" and candidate.compute_dtype() == "int8"
    difference = np.abs(candidate.predict(TEXTS) - reference.predict(TEXTS))
    assert 0 < difference.max() < 0.2
    kept = RecipeContext("candidates[0]", list, tmp_path / "artefacts", no_progress,
                         exclude=("bert.encoder.layer.1.*",))
    partial = torchao_int8_dynamic("int8-kept", reference, kept)
    assert partial.recipe["quantized_count"] < candidate.recipe["quantized_count"]
    assert type(partial.model.bert.encoder.layer[1].output.dense.weight) is \
        torch.nn.Parameter


def test_speed_probe_waits_for_the_gpu(model_dir):
    """The timed region ends only when the GPU has finished: work that returns at once on
    the host but keeps the GPU busy ~0.1 s (``torch.cuda._sleep``) is timed as long as
    CUDA events measure it."""
    from validator.speed.isolated import rates, timed, warm_up

    scorer = load(model_dir, "auto")
    texts = TEXTS * 10
    warm_up(scorer, texts)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    seconds = timed(scorer, lambda: torch.cuda._sleep(200_000_000))
    end.record()
    end.synchronize()
    assert start.elapsed_time(end) > 20
    assert seconds * 1000 >= 0.95 * start.elapsed_time(end)
    figures = rates(scorer, texts)
    assert figures["forward_rows_per_s"] > 0 and figures["tokenize_rows_per_s"] > 0
    assert figures["throughput_rows_per_s"] <= 1.25 * min(figures["forward_rows_per_s"],
                                                         figures["tokenize_rows_per_s"])


def test_onnx_export_from_a_cuda_reference_leaves_it_on_cuda(model_dir, tmp_path):
    from validator.scorers.onnx_recipes import onnx_fp32

    reference = load(model_dir, "auto")
    candidate = onnx_fp32("onnx", reference, context(tmp_path))
    assert on_cuda(reference)
    np.testing.assert_allclose(candidate.predict(TEXTS), reference.predict(TEXTS),
                               atol=1e-4)
