"""Every command, metric, recipe, backend and gate policy is documented in the README or
in docs/*.md, and every command's help carries an example."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from conftest import ROOT
from validator import __version__
from validator.cli import app
from validator.metrics import METRICS
from validator.scorers import BACKENDS, RECIPES

README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = "\n".join([README, *(path.read_text(encoding="utf-8")
                            for path in sorted((ROOT / "docs").glob("*.md")))])


def command_paths(command, prefix: tuple[str, ...] = ()) -> list[str]:
    """Every command and group of the CLI, walked from the app ("" is the app)."""
    paths = [" ".join(prefix)]
    for name, sub in getattr(command, "commands", {}).items():  # groups have commands
        paths += command_paths(sub, (*prefix, name))
    return paths


COMMANDS = command_paths(typer.main.get_command(app))


def test_the_walk_finds_every_command():
    assert {"", "run", "quantize", "report", "init", "slices", "slices check"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_command_is_documented_with_an_example(command):
    assert f"validator {command}".strip() in DOCS
    result = CliRunner().invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0 and "Example: validator" in result.output


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"slice-validator {__version__}"


@pytest.mark.parametrize("name", [*METRICS, *RECIPES, *BACKENDS,
                                  "point", "confident", "non_inferiority", "holm", "bh"])
def test_registry_name_is_documented(name):
    assert f"`{name}`" in DOCS
