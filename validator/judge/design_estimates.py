"""Design-based degradation of a row-mean metric (agreement, mean absolute error) on a
slice whose rows are only partly rated: double sampling for stratification (two-phase
sampling; Cochran 1977, *Sampling Techniques*, 3rd ed., sections 12.2-12.3; Särndal,
Swensson & Wretman 1992, *Model Assisted Survey Sampling*, ch. 9).

Phase 1 is every scored row of the slice, rated or not: a sample of the production
traffic. Each (row, dimension) pair falls in a cell known from the predictions alone.
Cell 0 holds the pairs where candidate and reference predict the same (rounded, for an
agreement metric; clipped to the scale, otherwise): there the metric's per-row
difference is exactly 0 whatever the human says. The other cells hold the pairs where
they differ ("flips"): one cell for an agreement metric; for mean absolute error up to
``MAX_BINS`` bins of |pred_c - pred_r|, which bounds the row's difference. Phase 2 is
the rated pairs, each weighted by 1 / inclusion probability (a Hajek mean per cell):

    D = sum_k w_k * dbar_k        w_k = share of phase-1 pairs in cell k, dbar_0 = 0

With every row rated and equal weights this is the plain mean of the per-row
differences, today's estimate. Its variance (Cochran's eq. 12.21, the pool taken as a
sample of an infinite production stream) is a phase-2 term, sum_k w_k^2 s_k^2 / n_k,
plus a phase-1 term, the variance of the cell means over the pool's rows / rows. The
gate's interval comes from a bootstrap of phase-1 rows, each carrying its rating
indicator and weight (both terms); the phase-1 term alone is returned for the
rated-rows-needed arithmetic, where it does not shrink with more ratings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from validator.metrics import Metric, round_rating

MAX_BINS = 4                 # |prediction difference| bins for a non-agreement metric
MIN_RATED_PER_BIN = 30       # rated pairs a bin needs before the flips are split further


def flip_pairs(metric: Metric, reference, candidate, scale) -> np.ndarray:
    """|difference| of the two predictions as the metric sees them (rounded for an
    agreement metric, clipped otherwise); 0 exactly where the row's difference is 0."""
    if metric.flip_tolerance is not None:
        return np.abs(round_rating(candidate, scale) - round_rating(reference, scale))
    return np.abs(np.clip(candidate, *scale) - np.clip(reference, *scale))


def cells_of(distance: np.ndarray, rated: np.ndarray, agreement: bool) -> np.ndarray:
    """Cell of each pair: 0 where the predictions agree, else 1.. by |difference| bins
    (quantiles of the phase-1 differences; fewer bins until each has rated pairs)."""
    cells = (distance > 0).astype(np.int64)
    nonzero = distance[distance > 0]
    rated_nonzero = int((rated & (distance > 0)).sum())
    if agreement or not len(nonzero):
        return cells
    for bins in range(min(MAX_BINS, max(1, rated_nonzero // MIN_RATED_PER_BIN)), 0, -1):
        edges = np.unique(np.quantile(nonzero, np.linspace(0, 1, bins + 1)[1:-1]))
        binned = np.where(distance > 0, 1 + np.searchsorted(edges, distance, side="right"), 0)
        counts = np.bincount(binned[rated & (distance > 0)], minlength=len(edges) + 2)[1:]
        if (counts > 0).all():
            return binned
    return cells


@dataclass(frozen=True)
class CellColumns:
    """Per row, per flip cell: phase-1 pairs, weighted rated pairs, weighted sum of the
    differences; ``pairs``: pairs per row (1 for a dimension, dimensions for ``_all``)."""
    phase1: np.ndarray   # (rows, cells)
    rated: np.ndarray
    total: np.ndarray
    pairs: int

    @property
    def matrix(self) -> np.ndarray:
        return np.hstack([self.phase1, self.rated, self.total])


def cell_columns(difference: np.ndarray, cells: np.ndarray, rated: np.ndarray,
                 weight: np.ndarray) -> CellColumns:
    """Columns for one check; ``difference``, ``cells``, ``rated``: (rows, pairs per row)."""
    k = int(cells.max(initial=0))
    onehot = cells[..., None] == np.arange(1, k + 1)                  # (rows, pairs, k)
    phase1 = onehot.sum(axis=1).astype(float)
    rated_hot = onehot & rated[..., None]
    weighted = rated_hot.sum(axis=1) * weight[:, None]
    total = (rated_hot * np.nan_to_num(difference)[..., None]).sum(axis=1) * weight[:, None]
    return CellColumns(phase1, weighted, total, cells.shape[1])


def combine(product: np.ndarray, draws: np.ndarray, k: int, pairs: int) -> np.ndarray:
    """D per resample from W @ CellColumns.matrix and the rows drawn per resample."""
    phase1, rated, total = product[:, :k], product[:, k:2 * k], product[:, 2 * k:]
    share = phase1 / (draws[:, None] * pairs)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(phase1 > 0, share * total / rated, 0.0)   # no rated flip: NaN
    return term.sum(axis=1) if k else np.zeros(len(product))


@dataclass(frozen=True)
class DesignEstimate:
    degradation: float
    phase1_sd: float          # SD of the estimate from the pool alone (cell shares)
    flip_rate: float          # share of phase-1 pairs whose predictions differ
    cell_shares: np.ndarray   # w_k, k >= 1
    cell_second_moments: np.ndarray  # weighted mean of d^2 of the rated pairs of cell k


def estimate(columns: CellColumns, difference: np.ndarray, cells: np.ndarray,
             rated: np.ndarray, weight: np.ndarray) -> DesignEstimate:
    """The point estimate, its phase-1 SD and the cells' figures for power arithmetic."""
    rows = len(weight)
    k = columns.phase1.shape[1]
    if rows == 0:
        nan = float("nan")
        return DesignEstimate(nan, nan, nan, np.zeros(k), np.zeros(k))
    ones = np.ones((1, rows))
    point = float(combine(ones @ columns.matrix, np.array([rows]), k, columns.pairs)[0])
    sums = columns.rated.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = columns.total.sum(axis=0) / sums
        squares = np.where(rated, weight[:, None] * np.nan_to_num(difference) ** 2, 0.0)
        moments = np.array([squares[cells == c].sum() for c in range(1, k + 1)]) / sums
    cell_mean = np.concatenate([[0.0], np.nan_to_num(means)])
    imputed = cell_mean[cells].mean(axis=1)             # each pool row's expected difference
    phase1_sd = float(imputed.std(ddof=1) / np.sqrt(rows)) if rows > 1 else 0.0
    shares = columns.phase1.sum(axis=0) / (rows * columns.pairs)
    return DesignEstimate(point, phase1_sd, float((cells > 0).mean()), shares, moments)


def ratings_needed(est: DesignEstimate, bound: np.ndarray, max_drop: float, z: float,
                   pairs: int) -> tuple[int | None, int | None]:
    """Rated rows for a check with no true loss to show degradation < max_drop at
    z = z_(1-alpha/2) + z_power: (uniform rating, ratings on flips only with Neyman
    allocation over the flip cells). Var = sum_k w_k s_k^2 / n (uniform, proportional
    allocation) or (sum_k w_k s_k)^2 / n (targeted); s_k^2 is the rated pairs' mean d^2,
    or ``bound`` (the largest possible d^2 in the cell) where a cell has none rated."""
    if not (np.isfinite(max_drop) and max_drop > 0 and np.isfinite(est.flip_rate)):
        return None, None
    s2 = np.where(np.isfinite(est.cell_second_moments), est.cell_second_moments, bound)
    uniform = float((est.cell_shares * s2).sum())
    targeted = float((est.cell_shares * np.sqrt(s2)).sum()) ** 2
    scale = (z / max_drop) ** 2 / pairs
    return int(np.ceil(uniform * scale)), int(np.ceil(targeted * scale))


AGREEMENT_STEP = 100.0  # an agreement metric's row value moves by 100 on a flip


def cell_bounds(distance: np.ndarray, cells: np.ndarray, agreement: bool) -> np.ndarray:
    """The largest possible squared difference per flip cell: 100^2 for an agreement
    metric, max |pred_c - pred_r|^2 of the cell otherwise (the triangle inequality)."""
    k = int(cells.max(initial=0))
    if agreement:
        return np.full(k, AGREEMENT_STEP ** 2)
    return np.array([float((distance[cells == c] ** 2).max()) for c in range(1, k + 1)])
