"""A simulated production pool with a known truth, for the rating-budget benchmark and
its end-to-end test: every row has a (hidden) human rating, reference and candidate
predictions in columns (the ``columns`` backend: no model runs) and one of three
slices. Ratings are revealed only for the ids a strategy chooses, and the real CLI
(``validator run``, ``validator plan-ratings``) is driven on the revealed sample.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

DIMENSIONS = ("quality", "tone")
SEGMENTS = {"alpha": 0.5, "beta": 0.3, "gamma": 0.2}
DROP_SLICE = "gamma"


def simulate_pool(rows: int, seed: int, flip_rate: float = 0.05,
                  drop_points: float = 0.0) -> pd.DataFrame:
    """Hidden ratings in ``{dim}``, predictions in ``{dim}_ref`` / ``{dim}_cand``.

    The candidate mirrors the reference's prediction across the nearest rounding
    boundary on the ``flip_rate`` of rows closest to one (as quantization noise does):
    there the two rounded values are about equally likely to be right, so no true loss.
    With ``drop_points`` > 0, on the gamma slice a further share of rows where the
    reference is right moves to a wrong rounded value (a planted loss of about that many
    percentage points of exact agreement)."""
    rng = np.random.default_rng(seed)
    segment = rng.choice(list(SEGMENTS), size=rows, p=list(SEGMENTS.values()))
    frame = pd.DataFrame({"id": [f"row-{i:06d}" for i in range(rows)],
                          "text": [f"synthetic pool text {i}" for i in range(rows)],
                          "segment": segment})
    for dim in DIMENSIONS:
        latent = rng.uniform(1.0, 5.0, rows)
        human = np.clip(np.floor(latent + rng.normal(0, 0.6, rows) + 0.5), 1, 5)
        reference = np.clip(latent + rng.normal(0, 0.4, rows), 1, 5)
        rounded = np.floor(reference + 0.5)
        boundary = np.clip(np.floor(reference) + 0.5, 1.5, 4.5)
        flip = np.abs(reference - boundary) < flip_rate / 2
        candidate = np.where(flip, 2 * boundary - reference, reference)
        if drop_points > 0:
            right = (rounded == human) & (segment == DROP_SLICE) & ~flip
            share = drop_points / 100 / max(right[segment == DROP_SLICE].mean(), 1e-9)
            lose = right & (rng.random(rows) < share)
            wrong = human + np.where(human >= 5, -1.0, 1.0)
            candidate = np.where(lose, wrong, candidate)
        frame[dim] = human
        frame[f"{dim}_ref"] = reference
        frame[f"{dim}_cand"] = candidate
    return frame


def true_degradation(frame: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(slice, dimension) -> reference minus candidate exact agreement on every row."""
    masks = {"all": np.ones(len(frame), bool),
             **{s: (frame["segment"] == s).to_numpy() for s in SEGMENTS}}
    truth = {}
    for name, mask in masks.items():
        per_dim = []
        for dim in DIMENSIONS:
            human = frame[dim].to_numpy()[mask]
            ref = np.floor(np.clip(frame[f"{dim}_ref"].to_numpy()[mask], 1, 5) + 0.5) == human
            cand = np.floor(np.clip(frame[f"{dim}_cand"].to_numpy()[mask], 1, 5) + 0.5) == human
            truth[(name, dim)] = 100 * float(ref.mean() - cand.mean())
            per_dim.append(ref.astype(float) - cand)
        truth[(name, "_all")] = 100 * float(np.mean(per_dim))
    return truth


def revealed(frame: pd.DataFrame, ids) -> pd.DataFrame:
    """The sample with ratings only on ``ids`` (the rest is the unrated pool)."""
    out = frame.copy()
    hidden = ~out["id"].isin(set(map(str, ids)))
    out.loc[hidden, list(DIMENSIONS)] = np.nan
    return out


def write_gate(folder: Path, sample: pd.DataFrame, plan: Path | None = None,
               max_drop: float = 1.0) -> Path:
    """A columns-backend gate over ``sample`` in ``folder``; returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    sample.to_csv(folder / "sample.csv", index=False)
    slices = {"slices": [{"name": s, "where": {"segment": s}} for s in SEGMENTS]}
    (folder / "slices.yaml").write_text(yaml.safe_dump(slices), encoding="utf-8")
    config = {
        "sample": {"path": "sample.csv", **({"rating_plan": str(plan)} if plan else {})},
        "rubric": {"scale": [1, 5], "dimensions": {d: d for d in DIMENSIONS}},
        "slices": ["slices.yaml"],
        "reference": {"name": "ref", "backend": "columns", "columns": "{dimension}_ref"},
        "candidates": [{"name": "cand", "backend": "columns", "columns": "{dimension}_cand"}],
        "gate": {"metric": "exact_agreement", "max_drop": max_drop, "min_rows": 50},
    }
    path = folder / "gate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def validator(*args: str) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess (what users run)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run([sys.executable, "-m", "validator", *args], capture_output=True,
                          text=True, env=env, check=False)


def run_gate(config: Path, out: Path) -> tuple[int, dict]:
    """``validator run``; (exit code, summary.json). Exit 2 is an error here."""
    done = validator("run", "--config", str(config), "--out", str(out), "--quiet", "--force")
    if done.returncode not in (0, 1):
        raise RuntimeError(f"validator run failed ({done.returncode}): {done.stderr.strip()}")
    return done.returncode, json.loads((out / "summary.json").read_text(encoding="utf-8"))


def plan_ids(pool_run: Path, budget: int, seed: int, plan: Path) -> list[str]:
    """``validator plan-ratings`` on a run over the unrated pool; the ids to rate."""
    done = validator("plan-ratings", str(pool_run), "--budget", str(budget), "--out",
                     str(plan), "--seed", str(seed))
    if done.returncode != 0:
        raise RuntimeError(f"validator plan-ratings failed: {done.stderr.strip()}")
    table = pd.read_csv(plan, dtype={"id": str})
    return table.loc[table["phase"] == "to_rate", "id"].tolist()


def uniform_ids(frame: pd.DataFrame, budget: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(frame["id"].to_numpy(), size=budget, replace=False))
