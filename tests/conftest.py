"""Shared fixtures: small configs over the shipped sample, run through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# measuring each model scorer alone (validator.speed.isolated) costs seconds per scorer; the
# tests of that measurement turn it back on (SERVING_PROBE)
os.environ.setdefault("SLICE_VALIDATOR_SERVING_PROBE", "off")
SERVING_PROBE = {"SLICE_VALIDATOR_SERVING_PROBE": "on"}
SAMPLE = ROOT / "fixtures" / "sample.csv"
DIMENSIONS = ["clarity", "persuasiveness", "brand_voice", "grammar", "call_to_action",
              "compliance", "tone"]


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "validator", *args], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=timeout,
                          env={**os.environ, **(env or {})})


def tiny_model_dir(path: Path, labels=tuple(DIMENSIONS), vocab_size: int = 30522,
                   initializer_range: float = 0.02) -> Path:
    """A small random BERT regression model saved as a real model directory, with the
    default encoder's tokenizer beside it (a larger ``initializer_range`` makes its
    outputs depend on the text: std ~0.7 at 0.3)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from validator.scorers.default_model import encoder_dir

    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, num_labels=len(labels),
                        problem_type="regression", max_position_embeddings=128,
                        initializer_range=initializer_range,
                        id2label={i: label for i, label in enumerate(labels)},
                        label2id={label: i for i, label in enumerate(labels)})
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.bias.fill_(3.0)  # centre predictions on the rating scale
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):
        shutil.copyfile(encoder_dir() / name, path / name)
    return path


@pytest.fixture(scope="session")
def validation_rows() -> pd.DataFrame:
    """The rated validation rows (the shipped sample's unrated pool left out)."""
    frame = pd.read_csv(SAMPLE)
    rated = frame.filter(regex=r"_r[12]$").notna().any(axis=1)
    return frame[(frame.split == "validation") & rated].reset_index(drop=True)


def human_mean(frame: pd.DataFrame, dimension: str) -> pd.Series:
    return frame[[f"{dimension}_r1", f"{dimension}_r2"]].mean(axis=1)


@pytest.fixture(scope="session")
def scored_rows(validation_rows) -> pd.DataFrame:
    """Validation rows plus a seeded noisy reference prediction per dimension."""
    rng = np.random.default_rng(7)
    frame = validation_rows.copy()
    for dimension in DIMENSIONS:
        frame[f"{dimension}_ref"] = human_mean(frame, dimension) + rng.normal(0, 0.45, len(frame))
    return frame


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    """The embedded default run (the real scorer, cached predictions): (result, run dir),
    shared by the end-to-end and the report browser tests; with the serving measurement
    of each scorer alone. SLICE_VALIDATOR_TEST_DEFAULT_RUN=DIR reuses a default run made
    before (copied, report.html rendered again: iterate on the report without scoring);
    test_e2e_default's check of the run's own stdout then fails, as nothing ran."""
    out = tmp_path_factory.mktemp("default") / "run"
    earlier = os.environ.get("SLICE_VALIDATOR_TEST_DEFAULT_RUN")
    if earlier:  # a default run made before: its outputs rendered again by this code
        shutil.copytree(earlier, out)
        result = run_cli("report", str(out))
        return subprocess.CompletedProcess(result.args, json.loads(
            (out / "summary.json").read_text())["exit_code"], result.stdout, result.stderr), out
    result = run_cli("run", "--out", str(out), "--quiet", env=SERVING_PROBE)
    return result, out


# A gate that a candidate identical to the reference passes on the shipped sample. At
# max_drop 1 a slice needs 368 scored rows before flips it does not show are ruled out
# (validator.judge.stats.unseen_flips_margin), more than the small content types have;
# at 5 points 72 rows do.
LENIENT_GATE = {"metric": "exact_agreement", "max_drop": 5.0, "min_rows": 50}


def columns_config(tmp_path: Path, frame: pd.DataFrame, **overrides) -> Path:
    """Write ``frame`` and a columns-backend config (reference *_ref, candidate *_cand)."""
    sample = tmp_path / "sample.parquet"
    frame.to_parquet(sample, index=False)
    config = {
        "sample": {"path": str(sample)},
        "rubric": {"scale": [1, 5],
                   "dimensions": {d: [f"{d}_r1", f"{d}_r2"] for d in DIMENSIONS}},
        "slices": [str(ROOT / "slices" / "content_types.yaml")],
        "reference": {"name": "ref", "backend": "columns", "columns": "{dimension}_ref"},
        "candidates": [{"name": "cand", "backend": "columns", "columns": "{dimension}_cand"}],
        "gate": {"metric": "exact_agreement", "max_drop": 1.0, "min_rows": 50},
    }
    config.update(overrides)
    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def reseal(run: Path) -> Path:
    """Record the files of a run folder a test changed on purpose (to stand for another
    run) as the run's own, as `validator run` would have: the sha256 in summary.json's
    ``outputs`` and in the folder's manifest. Without it, every reader refuses the
    folder (validator.record.run_dir)."""
    import json

    from validator.record.ownership import MANIFEST_NAME, file_sha256, manifest_text

    summary = json.loads((run / "summary.json").read_text())
    summary["outputs"] = {name: file_sha256(run / name) for name in summary.get("outputs", {})}
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    (run / MANIFEST_NAME).write_text(manifest_text(
        {p.name: file_sha256(p) for p in run.iterdir() if p.is_file() and p.name != MANIFEST_NAME}))
    return run
