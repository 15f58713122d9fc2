"""The transformers backend on a tiny random BERT (saved as a real model directory)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer

from conftest import SAMPLE
from conftest import tiny_model_dir as make_tiny_model
from validator.errors import ModelError
from validator.scorers import RecipeContext, no_progress
from validator.scorers.batched import check_tokenizer_fits, padded_batches
from validator.scorers.torch_recipes import torch_int8_dynamic
from validator.scorers.transformers_backend import load_transformers_scorer

DIMS = ["clarity", "tone", "compliance"]
SCALE = (1, 5)


def tiny_model_dir(path, labels=DIMS):
    return make_tiny_model(path, labels)


def scorer_config(path, batch_size=4, runtime=None):
    return SimpleNamespace(name="tiny", model=str(path), batch_size=batch_size, max_length=64,
                           key="reference", device="cpu", runtime=runtime,
                           outputs=None, output_scale=None)


def recipe_context(runtime=None):
    return RecipeContext("candidates[0]", list, Path("unused"), no_progress, runtime)


TEXTS = ["Shop now", "A much longer piece of copy about hiking boots that keep you dry",
         "Free shipping 🎉", "Hi {first_name}, your order shipped.", "OK",
         "Last chance: 20% off ends tonight", "Envío gratis en todos los pedidos"]


def test_batched_scores_equal_one_at_a_time_in_original_order(tmp_path):
    scorer = load_transformers_scorer(scorer_config(tiny_model_dir(tmp_path)), DIMS, SCALE)
    batched = scorer.predict(TEXTS)
    single = np.vstack([scorer.predict([t]) for t in TEXTS])
    assert batched.shape == (len(TEXTS), 3)
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_outputs_follow_id2label_not_position(tmp_path):
    model_dir = tiny_model_dir(tmp_path)
    in_model_order = load_transformers_scorer(scorer_config(model_dir), DIMS, SCALE).predict(TEXTS)
    swapped = load_transformers_scorer(scorer_config(model_dir),
                                       ["compliance", "clarity", "tone"], SCALE).predict(TEXTS)
    np.testing.assert_allclose(swapped, in_model_order[:, [2, 0, 1]], atol=1e-6)


def test_int8_recipe_quantizes_and_stays_close(tmp_path):
    reference = load_transformers_scorer(scorer_config(tiny_model_dir(tmp_path)), DIMS, SCALE)
    candidate = torch_int8_dynamic("int8", reference, recipe_context())
    assert candidate.recipe["quantized_count"] > 0
    assert candidate.size_bytes() < reference.size_bytes()
    difference = np.abs(candidate.predict(TEXTS) - reference.predict(TEXTS))
    assert 0 < difference.max() < 0.5


def test_output_count_must_match_the_rubric(tmp_path):
    with pytest.raises(ModelError, match="2 outputs but the rubric has 3 dimensions"):
        load_transformers_scorer(scorer_config(tiny_model_dir(tmp_path, ["clarity", "tone"])),
                                 DIMS, SCALE)


def test_labels_must_name_the_dimensions(tmp_path):
    model_dir = tiny_model_dir(tmp_path, ["LABEL_0", "LABEL_1", "LABEL_2"])
    with pytest.raises(ModelError, match="id2label does not name dimension 'clarity'"):
        load_transformers_scorer(scorer_config(model_dir), DIMS, SCALE)


def test_pickled_weights_are_refused(tmp_path):
    model_dir = tiny_model_dir(tmp_path)
    (model_dir / "model.safetensors").rename(model_dir / "pytorch_model.bin")
    with pytest.raises(ModelError, match="pickled weights are refused"):
        load_transformers_scorer(scorer_config(model_dir), DIMS, SCALE)


def test_corrupt_weights_name_the_directory(tmp_path):
    model_dir = tiny_model_dir(tmp_path)
    (model_dir / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match=str(model_dir)):
        load_transformers_scorer(scorer_config(model_dir), DIMS, SCALE)


def test_weights_missing_a_tensor_are_refused_not_filled_at_random(tmp_path):
    """transformers fills a tensor the file lacks with random values and carries on."""
    from safetensors.numpy import load_file, save_file

    model_dir = tiny_model_dir(tmp_path)
    weights = load_file(model_dir / "model.safetensors")
    dropped = next(name for name in weights if name.endswith("attention.self.query.weight"))
    save_file({k: v for k, v in weights.items() if k != dropped},
              model_dir / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelError, match=rf"{model_dir}: the weights lack 1 tensors the "
                                         rf"model needs \(first: {dropped}\)"):
        load_transformers_scorer(scorer_config(model_dir), DIMS, SCALE)


def test_torchscript_runtime_gives_the_eager_predictions(tmp_path):
    model_dir = tiny_model_dir(tmp_path)
    eager = load_transformers_scorer(scorer_config(model_dir), DIMS, SCALE)
    traced = load_transformers_scorer(scorer_config(model_dir, runtime="torchscript"), DIMS, SCALE)
    assert (eager.runtime, traced.runtime) == ("eager", "torchscript")
    assert traced.fingerprint() != eager.fingerprint()
    # artefacts built from the model (ONNX exports) do not depend on how it runs
    assert traced.model_fingerprint == eager.model_fingerprint
    np.testing.assert_allclose(traced.predict(TEXTS), eager.predict(TEXTS), atol=1e-6)


def test_torch_recipes_inherit_the_reference_runtime_unless_set(tmp_path):
    reference = load_transformers_scorer(
        scorer_config(tiny_model_dir(tmp_path), runtime="torchscript"), DIMS, SCALE)
    inherited = torch_int8_dynamic("int8", reference, recipe_context())
    own = torch_int8_dynamic("int8", reference, recipe_context("eager"))
    assert (inherited.runtime, own.runtime) == ("torchscript", "eager")
    assert inherited.fingerprint() != own.fingerprint()
    np.testing.assert_allclose(inherited.predict(TEXTS), own.predict(TEXTS), atol=1e-6)


def test_a_trace_that_differs_from_the_eager_model_is_refused(tmp_path, monkeypatch):
    import torch

    model_dir = tiny_model_dir(tmp_path)
    real_trace = torch.jit.trace

    def trace_then_change_the_weights(model, **kwargs):
        traced = real_trace(model, **kwargs)
        # the eager model gets new weights; the trace keeps the old ones
        model.classifier.bias = torch.nn.Parameter(model.classifier.bias.detach() + 1.0)
        return traced

    monkeypatch.setattr(torch.jit, "trace", trace_then_change_the_weights)
    with pytest.raises(ModelError, match="does not reproduce the eager model"):
        load_transformers_scorer(scorer_config(model_dir, runtime="torchscript"), DIMS, SCALE)


def test_a_bf16_model_directory_loads_and_scores_as_bf16(tmp_path):
    """transformers 4.x loads float32 unless told; the dtype in config.json is passed
    explicitly, so a `validator quantize --recipe torch-bf16` artefact is gated as bf16."""
    import shutil

    import torch
    from transformers import AutoModelForSequenceClassification

    source = tiny_model_dir(tmp_path / "fp32")
    bf16 = tmp_path / "bf16"
    AutoModelForSequenceClassification.from_pretrained(source).to(torch.bfloat16) \
        .save_pretrained(bf16)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):
        shutil.copyfile(source / name, bf16 / name)
    scorer = load_transformers_scorer(scorer_config(bf16), DIMS, SCALE)
    assert {p.dtype for p in scorer.model.parameters()} == {torch.bfloat16}
    fp32 = load_transformers_scorer(scorer_config(source), DIMS, SCALE)
    assert {p.dtype for p in fp32.model.parameters()} == {torch.float32}
    assert not np.array_equal(scorer.predict(TEXTS), fp32.predict(TEXTS))


@pytest.mark.parametrize("side", ["right", "left"])
def test_padded_batches_are_what_the_tokenizer_pads(tmp_path, side):
    """The numpy padding of validator.scorers.batched equals ``tokenizer.pad`` (keys,
    values, int64), batch by batch, on the tokenizer's padding side; empty texts too."""
    tokenizer = AutoTokenizer.from_pretrained(make_tiny_model(tmp_path / "m"),
                                              local_files_only=True)
    tokenizer.padding_side = side
    texts = pd.read_csv(SAMPLE)["text"].astype(str).head(100).tolist() + ["", "Go."]
    encodings = tokenizer(texts, truncation=True, max_length=64)["input_ids"]
    batches = list(padded_batches(tokenizer, encodings, 16))
    assert sorted(np.concatenate([rows for rows, _ in batches])) == list(range(len(texts)))
    for rows, got in batches:
        expected = tokenizer.pad({"input_ids": [encodings[i] for i in rows]},
                                 return_tensors="np")
        assert set(got) == set(expected)
        for key, values in got.items():
            assert values.dtype == np.int64 and (values == expected[key]).all()


def test_a_tokenizer_without_a_padding_token_is_refused_naming_the_directory(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(make_tiny_model(tmp_path / "m"),
                                              local_files_only=True)
    check_tokenizer_fits(tmp_path / "m", tokenizer, len(tokenizer))
    tokenizer.pad_token = None
    with pytest.raises(ModelError, match=r"/m: the tokenizer has no padding token"):
        check_tokenizer_fits(tmp_path / "m", tokenizer, len(tokenizer))
