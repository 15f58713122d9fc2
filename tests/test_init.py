"""``validator init``: the starter project lists every config key, refuses to
overwrite, and runs as written on the shipped sample and the default scorer."""

from __future__ import annotations

import types
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from conftest import run_cli
from validator.config import Config, load_config
from validator.scaffold import SCAFFOLD


def model_of(annotation) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        for argument in typing.get_args(annotation):
            found = model_of(argument)
            if found is not None:
                return found
    return None


def instances(model: type[BaseModel], values: list, found: dict) -> dict:
    """Every YAML mapping standing for ``model`` or a model nested in it, by model."""
    mappings = [v for v in values if isinstance(v, dict)]
    found.setdefault(model, []).extend(mappings)
    for name, field in model.model_fields.items():
        inner = model_of(field.annotation)
        if inner is not None:
            present = [m[field.alias or name] for m in mappings if (field.alias or name) in m]
            instances(inner, [x for p in present for x in (p if isinstance(p, list) else [p])],
                      found)
    return found


def missing_keys(raw: dict) -> list[str]:
    """Keys of the config schema (every model, walked from Config) that no mapping of
    that model in ``raw`` sets: a scorer key counts when any scorer sets it."""
    return sorted(f"{model.__name__}.{field.alias or name}"
                  for model, mappings in instances(Config, [raw], {}).items()
                  for name, field in model.model_fields.items()
                  if not any((field.alias or name) in m for m in mappings))


@pytest.fixture
def project(tmp_path) -> Path:
    result = run_cli("init", str(tmp_path / "gate"))
    assert result.returncode == 0, result.stderr
    return tmp_path / "gate"


def test_the_starter_gate_lists_every_key_of_the_config_schema(project):
    raw = yaml.safe_load((project / "gate.yaml").read_text(encoding="utf-8"))
    assert missing_keys(raw) == []
    assert load_config(project / "gate.yaml").reference.model == "default"


def test_the_key_walk_notices_a_missing_key(project):
    raw = yaml.safe_load((project / "gate.yaml").read_text(encoding="utf-8"))
    del raw["gate"]["correction"], raw["candidates"][1]["calibration"]["rows"]
    del raw["reference"]["columns"]
    assert missing_keys(raw) == ["CalibrationConfig.rows", "GateConfig.correction",
                                 "ScorerConfig.columns"]


def test_every_starter_file_is_written(project):
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()) \
        == sorted(SCAFFOLD)


def test_the_ci_examples_publish_every_output(project):
    for name in ("github-actions.yml", "gitlab-ci.yml"):
        text = (project / "ci" / name).read_text(encoding="utf-8")
        yaml.safe_load(text)
        assert "validator run --config gate.yaml" in text
        for output in ("report.html", "junit.xml", "summary.md"):
            assert output in text, (name, output)


def test_init_refuses_to_overwrite_without_force(project):
    (project / "slices" / "slices.yaml").write_text("slices: []\n")
    (project / "gate.yaml").unlink()
    result = run_cli("init", str(project))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {project / 'slices' / 'slices.yaml'}: already "
                                     f"exists; pass --force to replace the starter files")
    assert not (project / "gate.yaml").exists()  # nothing written when one file is in the way
    assert run_cli("init", str(project), "--force").returncode == 0
    assert "headlines" in (project / "slices" / "slices.yaml").read_text()


@pytest.mark.e2e
def test_the_starter_project_runs_as_written(project):
    result = run_cli("run", "--config", str(project / "gate.yaml"), "--quiet", cwd=project)
    assert result.returncode in (0, 1), result.stderr
    runs = list((project / "reports").glob("run-*"))
    assert len(runs) == 1
    assert {p.name for p in runs[0].iterdir()} >= {"report.html", "summary.json", "junit.xml",
                                                   "summary.md", "predictions.parquet"}
