"""Large synthetic gates for the benchmarks: the shipped sample resampled to any size,
with columns-backend predictions (the reference plus noisier candidates)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from validator.config import DEFAULT_DIMENSIONS

ROOT = Path(__file__).resolve().parents[1]  # the repository


def resampled_sample(rows: int, candidate_noise: dict[str, float], seed: int = 0,
                     split: str | None = None) -> pd.DataFrame:
    """``split``: resample only the shipped rows of that split (default: all rows)."""
    rng = np.random.default_rng(seed)
    frame = pd.read_csv(ROOT / "fixtures" / "sample.csv")
    frame = frame[frame.filter(regex=r"_r[12]$").notna().any(axis=1)]  # rated rows only
    if split is not None:
        frame = frame[frame.split == split]
    frame = frame.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
    frame["id"] = [f"row-{i:07d}" for i in range(rows)]
    for d in DEFAULT_DIMENSIONS:
        human = frame[[f"{d}_r1", f"{d}_r2"]].mean(axis=1).to_numpy()
        frame[f"{d}_ref"] = human + rng.normal(0, 0.5, rows)
        for name, noise in candidate_noise.items():
            frame[f"{d}_{name}"] = frame[f"{d}_ref"] + rng.normal(0, noise, rows)
    return frame


def columns_gate(sample: str, candidates: list[str], slices: list[str]) -> dict:
    return {"sample": {"path": sample},
            "rubric": {"scale": [1, 5], "dimensions": {d: [f"{d}_r1", f"{d}_r2"]
                                                       for d in DEFAULT_DIMENSIONS}},
            "slices": slices,
            "reference": {"name": "ref", "backend": "columns", "columns": "{dimension}_ref"},
            "candidates": [{"name": n, "backend": "columns", "columns": f"{{dimension}}_{n}"}
                           for n in candidates]}
