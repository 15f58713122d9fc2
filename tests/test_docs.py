"""Every command, metric, recipe, backend and gate policy is documented in the README,
and every command's help carries an example."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from conftest import ROOT
from validator.cli import app
from validator.metrics import METRICS
from validator.scorers import BACKENDS, RECIPES

README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMANDS = ["run", "quantize", "report", "slices check", "discover"]


@pytest.mark.parametrize("command", COMMANDS)
def test_command_is_documented_with_an_example(command):
    assert f"validator {command}" in README
    result = CliRunner().invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0 and "Example: validator" in result.output


@pytest.mark.parametrize("name", [*METRICS, *RECIPES, *BACKENDS,
                                  "point", "confident", "non_inferiority", "holm", "bh"])
def test_registry_name_is_documented(name):
    assert f"`{name}`" in README
