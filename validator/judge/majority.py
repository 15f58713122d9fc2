"""The majority-rating baseline: every metric of a predictor that always answers the
slice's most common human rating, recorded in summary.json as the pseudo-scorer
``_majority`` under ``metrics`` (validator.outputs.majority says where the gate's
metric cannot see past it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from validator.metrics import compute_metrics, round_rating

MAJORITY = "_majority"


def majority_predictions(human: pd.DataFrame, mask: np.ndarray,
                         scale: tuple[int, int]) -> np.ndarray:
    """Every row predicted as its dimension's most common rounded rating in the slice
    (ties go to the lower rating; NaN for a dimension nobody rated there)."""
    low = scale[0]
    out = np.full(human.shape, np.nan)
    ratings = human.to_numpy(dtype=float)[mask]
    for j in range(human.shape[1]):
        rated = ratings[:, j][~np.isnan(ratings[:, j])]
        if len(rated):
            counts = np.bincount((round_rating(rated, scale) - low).astype(np.int64))
            out[:, j] = low + int(np.argmax(counts))
    return out


def majority_metrics(human: pd.DataFrame, masks: pd.DataFrame,
                     scale: tuple[int, int]) -> pd.DataFrame:
    """Every metric of the majority-rating predictor per slice and dimension, as rows of
    the tidy metrics frame (scorer ``_majority``)."""
    frames = [compute_metrics(human, {MAJORITY: majority_predictions(
                  human, masks[name].to_numpy(dtype=bool), scale)}, masks[[name]], scale)
              for name in masks.columns]
    return pd.concat(frames, ignore_index=True)
