"""Plan before work: a bad config exits 2 before any prediction is computed or cached,
and model errors name the config key."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import DIMENSIONS, columns_config, run_cli, tiny_model_dir

BAD = {
    "wrong gate.metric": ({"gate": {"metric": "accuracy"}},
                          "gate.metric: unknown metric 'accuracy'"),
    "unknown recipe": ({"candidates": [{"name": "q", "from": "reference",
                                        "recipe": "int4-magic"}]},
                       "candidates[0].recipe: unknown recipe 'int4-magic'"),
    "override of an unknown slice": ({"gate": {"overrides": [{"slice": "headlinez",
                                                              "max_drop": 2}]}},
                                     "gate.overrides[0].slice: unknown slice 'headlinez'"),
    "a trace of a recipe that runs eager only": (
        {"candidates": [{"name": "q", "from": "reference", "recipe": "torchao-int8-dynamic",
                         "runtime": "torchscript"}]},
        "candidates[0].runtime: recipe 'torchao-int8-dynamic' runs eager only"),
    "too few calibration rows": ({"candidates": [{"name": "q", "from": "reference",
                                                  "recipe": "onnx-int8-static"}]},
                                 "candidates[0].calibration: the calibration set has 0 rows"),
}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("model") / "tiny")


def gate(tmp_path: Path, validation_rows, model: Path, **changes) -> list[str]:
    """A gate whose scorers are cached (a tiny transformers model and its INT8 twin)."""
    frame = validation_rows.head(200)
    config = columns_config(tmp_path, frame, **{
        "reference": {"name": "ref", "backend": "transformers", "model": str(model)},
        "candidates": [{"name": "q", "from": "reference", "recipe": "torch-int8-dynamic"}],
        "gate": {"min_rows": 10}, **changes})
    return ["run", "--config", str(config), "--out", str(tmp_path / "out"), "--quiet"]


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_config_exits_2_before_anything_is_scored(case, tmp_path, validation_rows,
                                                        model):
    changes, message = BAD[case]
    cache = tmp_path / "cache"
    result = run_cli(*gate(tmp_path, validation_rows, model, **changes),
                     env={"SLICE_VALIDATOR_CACHE": str(cache)})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "gate.yaml: " in result.stderr
    assert not cache.exists() or not any(cache.rglob("*")), sorted(cache.rglob("*"))


def test_the_same_gate_when_valid_scores_into_that_cache(tmp_path, validation_rows, model):
    cache = tmp_path / "cache"
    result = run_cli(*gate(tmp_path, validation_rows, model),
                     env={"SLICE_VALIDATOR_CACHE": str(cache)})
    assert result.returncode in (0, 1), result.stderr
    assert any((cache / "predictions").rglob("*.npz"))


def test_a_model_error_names_the_config_key(tmp_path, validation_rows):
    wrong = tiny_model_dir(tmp_path / "m", labels=tuple(DIMENSIONS[:2]))
    result = run_cli(*gate(tmp_path, validation_rows, wrong))
    assert result.returncode == 2
    assert "gate.yaml: reference.model: " in result.stderr
    assert "the model has 2 outputs but the rubric has 7 dimensions" in result.stderr
