"""Config schema v1: defaults, overrides and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from validator.config import DEFAULT_CONFIG, default_config, parse_config
from validator.errors import ConfigError


def config_with(**changes) -> dict:
    return {**DEFAULT_CONFIG, **changes}


def test_default_config_points_at_the_shipped_files():
    config = default_config()
    assert config.sample.path.is_file() and config.slices[0].is_dir()
    assert [c.recipe for c in config.candidates] == ["torch-int8-dynamic", "onnx-int8-static",
                                                     "onnx-fp32"]
    assert config.sample.rating_plan is None


def test_most_specific_override_wins():
    gate = {"max_drop": 1.0, "overrides": [{"slice": "headlines", "max_drop": 2.0},
                                           {"slice": "headlines", "dimension": "compliance",
                                            "max_drop": 0.5}]}
    config = parse_config(config_with(gate=gate), "c.yaml", Path("."))
    assert config.gate.max_drop_for("int8-dynamic", "headlines", "compliance") == 0.5
    assert config.gate.max_drop_for("int8-dynamic", "headlines", "clarity") == 2.0
    assert config.gate.max_drop_for("int8-dynamic", "sms", "clarity") == 1.0


@pytest.mark.parametrize("changes, message", [
    ({"colour": "red"}, "c.yaml: colour: unknown key"),
    ({"gate": {"max_drop": "lots"}}, "c.yaml: gate.max_drop: Input should be a valid number"),
    ({"gate": {"on_inconclusive": "ignore"}}, "c.yaml: gate.on_inconclusive"),
    ({"candidates": []}, "c.yaml: candidates"),
    ({"candidates": [{"name": "fp32", "from": "reference", "recipe": "torch-int8-dynamic"}]},
     "scorer names must be unique, repeated: fp32"),
    ({"candidates": [{"name": "x", "backend": "columns"}]}, "the columns backend needs"),
    ({"rubric": {"scale": [5, 1], "dimensions": {"a": "a"}}}, "low < high"),
    ({"gate": {"overrides": [{"dimension": "colour", "max_drop": 1}]}},
     "unknown dimension 'colour'"),
])
def test_errors_name_file_and_key(changes, message):
    with pytest.raises(ConfigError) as info:
        parse_config(config_with(**changes), "c.yaml", Path("."))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_rating_plan_is_relative_to_the_config_file():
    sample = {**DEFAULT_CONFIG["sample"], "rating_plan": "plans/PLAN.csv"}
    config = parse_config(config_with(sample=sample), "c.yaml", Path("/gates/release"))
    assert config.sample.rating_plan == Path("/gates/release/plans/PLAN.csv")
    assert config.sample.path == Path("/gates/release") / DEFAULT_CONFIG["sample"]["path"]
