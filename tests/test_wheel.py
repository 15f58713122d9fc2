"""A regular wheel install runs anywhere: the wheel is built and installed (not
editable) into a fresh virtual environment that reuses this environment's
dependencies, and the default gate runs from an empty directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import ROOT
from validator.scaffold import SCAFFOLD

OUTPUTS = {"report.html", "summary.json", "junit.xml", "summary.md", "predictions.parquet"}


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=900, **kwargs)
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-2000:])
    return result


def build_wheel(folder: Path) -> Path:
    """The wheel of a copy of the package sources (the checkout is left untouched)."""
    source = folder / "src"
    shutil.copytree(ROOT / "validator", source / "validator",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
        "-w", folder / "dist", source)
    return next((folder / "dist").glob("slice_validator-*.whl"))


def fresh_venv(folder: Path) -> Path:
    """A new virtual environment that sees this one's packages (by a .pth path line, so
    this environment's own .pth files, an editable install among them, stay inactive)."""
    run(sys.executable, "-m", "venv", "--without-pip", folder)
    python = folder / "bin" / "python"
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
               env={**os.environ, "PYTHONPATH": ""}).stdout.strip()
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(site, "_inherited.pth").write_text("\n".join(paths) + "\n")
    return python


@pytest.mark.e2e
def test_the_wheel_runs_the_default_gate_from_an_empty_directory(tmp_path):
    wheel = build_wheel(tmp_path)
    python = fresh_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the shared cache stays
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", wheel, env=env)
    where = tmp_path / "anywhere"
    where.mkdir()
    imported = run(python, "-c", "import validator; print(validator.__file__)", cwd=where,
                   env=env).stdout.strip()
    assert Path(imported).is_relative_to(tmp_path / "venv"), imported
    result = subprocess.run([str(tmp_path / "venv" / "bin" / "validator"), "run", "--quiet"],
                            capture_output=True, text=True, cwd=where, env=env, timeout=900)
    assert result.returncode in (0, 1), result.stderr
    runs = list((where / "reports").glob("run-*"))
    assert len(runs) == 1 and OUTPUTS <= {p.name for p in runs[0].iterdir()}
    run(tmp_path / "venv" / "bin" / "validator", "init", "starter", cwd=where, env=env)
    assert sorted(str(p.relative_to(where / "starter")) for p in (where / "starter").rglob("*")
                  if p.is_file()) == sorted(SCAFFOLD)
