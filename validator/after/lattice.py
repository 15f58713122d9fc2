"""Search conjunctions of features for the groups where the candidate loses most.

This is SliceLine's enumeration (Sagadeeva and Boehm, SIGMOD 2021): one-hot feature
columns X, level 1 scores every feature, level k+1 extends every slice of level k that
still has ``min_rows`` rows by one feature of another family, and each level is scored
with sparse matrix products (S^T X for row counts, signal sums and weights). Support
only shrinks as conditions are added, so pruning slices under ``min_rows`` loses
nothing.

The score differs from SliceLine's: every row carries a signed signal (agreement
lost minus agreement gained, as a sum over its rated dimensions and their count), and
a slice scores ``(effect - overall effect) * sqrt(weight)``: its excess loss over the
whole search half weighted by support, a z-like score. SliceLine's ratio to the
average error needs a non-negative error with a positive mean, which a signed loss
that is zero for an identical candidate does not have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse


@dataclass(frozen=True)
class Found:
    features: tuple[int, ...]   # feature indices, ascending
    rows: int
    effect: float               # sum / weight over the slice's rows
    score: float


def _level_stats(M: sparse.csc_matrix, sums: np.ndarray, weights: np.ndarray):
    rows = np.asarray(M.sum(axis=0)).ravel()
    return rows, M.T @ sums, M.T @ weights


def _extensions(keys: list[tuple[int, ...]], M: sparse.csc_matrix, X: sparse.csc_matrix,
                families: np.ndarray, min_rows: int):
    """(parent index, feature) pairs whose conjunction keeps at least min_rows rows, for
    features after the parent's last one and of a family the parent does not use."""
    counts = (M.T @ X).toarray()
    last = np.array([k[-1] for k in keys])
    uses = np.zeros((len(keys), families.max() + 1), dtype=bool)
    for i, key in enumerate(keys):
        uses[i, families[list(key)]] = True
    valid = ((np.arange(X.shape[1])[None, :] > last[:, None]) & ~uses[:, families]
             & (counts >= min_rows))
    return np.nonzero(valid)


def search(masks: np.ndarray, families: np.ndarray, sums: np.ndarray, weights: np.ndarray,
           min_rows: int, max_conditions: int) -> list[Found]:
    """Every conjunction of up to ``max_conditions`` features (one per family) with at
    least ``min_rows`` rows whose effect exceeds the overall one, best score first."""
    total = weights.sum()
    if total <= 0 or not masks.shape[1]:
        return []
    overall = sums.sum() / total
    X = sparse.csc_matrix(masks, dtype=np.float64)
    keys = [(j,) for j in range(X.shape[1])]
    M = X
    found: list[Found] = []
    for level in range(1, max_conditions + 1):
        rows, slice_sums, slice_weights = _level_stats(M, sums, weights)
        keep = np.flatnonzero((rows >= min_rows) & (slice_weights > 0))
        with np.errstate(invalid="ignore", divide="ignore"):
            effect = slice_sums / slice_weights
        score = (effect - overall) * np.sqrt(slice_weights)
        found += [Found(keys[i], int(rows[i]), float(effect[i]), float(score[i]))
                  for i in keep if effect[i] > overall]
        if level == max_conditions or not len(keep):
            break
        keys = [keys[i] for i in keep]
        M = M[:, keep]
        parents, features = _extensions(keys, M, X, families, min_rows)
        if not len(parents):
            break
        M = sparse.csc_matrix(M[:, parents].multiply(X[:, features]))
        keys = [(*keys[p], int(f)) for p, f in zip(parents, features)]
    return sorted(found, key=lambda f: (-f.score, len(f.features), f.features))
