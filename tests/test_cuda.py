"""``device: auto`` on a CUDA machine (skipped where there is none, as in CI).

A tiny random BERT is scored on the GPU and on the CPU; recipes made from a GPU
reference run where they should (INT8 dynamic on the CPU, bf16 on the GPU, the ONNX
export from a CPU copy), and leave the reference on the GPU.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

from conftest import tiny_model_dir  # noqa: E402
from validator.scorers import RecipeContext, no_progress  # noqa: E402
from validator.scorers.torch_recipes import torch_bf16, torch_int8_dynamic  # noqa: E402
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


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("cuda") / "model", labels=DIMS)


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


def test_bf16_from_a_cuda_reference_stays_on_cuda(model_dir, tmp_path):
    reference = load(model_dir, "auto")
    candidate = torch_bf16("bf16", reference, context(tmp_path))
    assert candidate.device == "cuda" and on_cuda(candidate)
    assert next(candidate.model.parameters()).dtype == torch.bfloat16
    difference = np.abs(candidate.predict(TEXTS) - reference.predict(TEXTS))
    assert difference.max() < 0.1


def test_onnx_export_from_a_cuda_reference_leaves_it_on_cuda(model_dir, tmp_path):
    from validator.scorers.onnx_recipes import onnx_fp32

    reference = load(model_dir, "auto")
    candidate = onnx_fp32("onnx", reference, context(tmp_path))
    assert on_cuda(reference)
    np.testing.assert_allclose(candidate.predict(TEXTS), reference.predict(TEXTS),
                               atol=1e-4)
