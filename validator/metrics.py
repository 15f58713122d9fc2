"""Agreement metrics per scorer x slice x dimension, as a tidy DataFrame.

Every metric is one registered ``Metric`` carrying every form the gate needs of it
(its value, per-row values or a resampled form for the bootstrap, direction, unit),
with the exact definitions of DESIGN.md: predictions are clipped to the scale and
rounded half up; the human rating is the raters' mean, rounded the same way. The
dimension ``_all`` pools every (row, dimension) pair of the slice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import mean_absolute_error

from validator.errors import choices_error

ALL_DIMENSIONS = "_all"
HUMAN_CEILING = "_human_ceiling"  # rater-vs-rater agreement, as a pseudo-scorer
Scale = tuple[int, int]


def round_rating(values: np.ndarray, scale: Scale) -> np.ndarray:
    """Clip to the scale, then round half up: floor(x + 0.5)."""
    low, high = scale
    return np.floor(np.clip(values, low, high) + 0.5)


def exact_agreement(human: np.ndarray, pred: np.ndarray, scale: Scale) -> float:
    return float(np.mean(round_rating(pred, scale) == round_rating(human, scale)) * 100)


def adjacent_agreement(human: np.ndarray, pred: np.ndarray, scale: Scale) -> float:
    return float(np.mean(np.abs(round_rating(pred, scale) - round_rating(human, scale)) <= 1)
                 * 100)


def kappa_from_confusion(observed: np.ndarray) -> np.ndarray:
    """Quadratic-weighted Cohen's kappa of confusion matrices (..., k, k), as
    scikit-learn's cohen_kappa_score(weights="quadratic") defines it."""
    k = observed.shape[-1]
    total = observed.sum(axis=(-2, -1))[..., None, None]
    grid = np.arange(k)
    weights = (grid[:, None] - grid[None, :]) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample with no rated pair: NaN
        expected = observed.sum(axis=-1)[..., :, None] * observed.sum(axis=-2)[..., None, :] \
            / total
        return 1.0 - (observed * weights).sum(axis=(-2, -1)) / (expected * weights).sum(
            axis=(-2, -1))


def confusion_codes(human: np.ndarray, pred: np.ndarray, scale: Scale) -> np.ndarray:
    """Cell index (human * k + prediction) of each row in the k x k confusion matrix."""
    k = scale[1] - scale[0] + 1
    return ((round_rating(human, scale) - scale[0]) * k
            + round_rating(pred, scale) - scale[0]).astype(np.int64)


def quadratic_kappa(human: np.ndarray, pred: np.ndarray, scale: Scale) -> float:
    k = scale[1] - scale[0] + 1
    observed = np.bincount(confusion_codes(human, pred, scale), minlength=k * k)
    return float(kappa_from_confusion(observed.reshape(k, k).astype(np.float64)))


def spearman(human: np.ndarray, pred: np.ndarray, scale: Scale) -> float:
    if len(human) < 2 or np.ptp(human) == 0 or np.ptp(pred) == 0:
        return float("nan")  # undefined for constant input
    return float(spearmanr(pred, human).statistic)


def mae(human: np.ndarray, pred: np.ndarray, scale: Scale) -> float:
    return float(mean_absolute_error(human, np.clip(pred, *scale)))


# -- resampled forms: W (B, n) counts of how often each row was drawn -> (B,) values -----

def w_kappa(W, h, p, scale):
    k = scale[1] - scale[0] + 1
    onehot = np.zeros((len(h), k * k))
    onehot[np.arange(len(h)), confusion_codes(h, p, scale)] = 1.0
    return kappa_from_confusion((W @ onehot).reshape(-1, k, k))


def _weighted_ranks(W, values):
    """Mid-ranks of each row's value within every weighted resample (ties share ranks)."""
    unique, group = np.unique(values, return_inverse=True)
    sums = np.zeros((W.shape[0], len(unique)))
    np.add.at(sums.T, group, W.T)
    before = np.cumsum(sums, axis=1) - sums
    return (before + (sums + 1.0) / 2.0)[:, group]


def w_spearman(W, h, p, scale):
    rh, rp = _weighted_ranks(W, h), _weighted_ranks(W, p)
    total = W.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample with no rated pair: NaN
        mh = (W * rh).sum(axis=1, keepdims=True) / total
        mp = (W * rp).sum(axis=1, keepdims=True) / total
        cov = (W * (rh - mh) * (rp - mp)).sum(axis=1)
        var = (W * (rh - mh) ** 2).sum(axis=1) * (W * (rp - mp) ** 2).sum(axis=1)
        return cov / np.sqrt(var)


RowFn = Callable[[np.ndarray, np.ndarray, Scale], np.ndarray]


@dataclass(frozen=True)
class Metric:
    """A metric with every form the gate needs of it:

    - ``row_value(h, p, scale)``: one value per (row, dimension) pair when the metric is
      their mean; the bootstrap then needs one matrix product per slice;
    - otherwise ``resampled(W, h, p, scale)``: the metric of each weighted resample;
    - ``aggregate(h, p, scale)``: the metric itself (default: the mean of row values);
    - ``flip_tolerance``: for agreement metrics, the |rounded difference| that still
      counts as agreeing; the p-value is then McNemar's exact test on the flips;
    - direction (``higher_is_better``), ``unit`` and a one-line ``description``;
    - thresholds in the metric's unit (docs/thresholds.md): ``range``, the values it can
      take (None: [0, the scale's width], for metrics in rating points; see
      ``range_on``), and ``max_drop``, the default tolerated degradation;
    - ``blind_to``: the changes of the predictions it cannot see (e.g. a shift), and
      ``guard``: the metric the gate also checks, on the same slices and dimensions, so
      that such a change cannot pass (None when the metric sees it itself)."""
    name: str
    higher_is_better: bool
    unit: str
    description: str
    aggregate: Callable[[np.ndarray, np.ndarray, Scale], float] | None = None
    row_value: RowFn | None = None
    resampled: Callable[..., np.ndarray] | None = None
    flip_tolerance: int | None = None
    range: tuple[float, float] | None = (0.0, 100.0)
    max_drop: float = 1.0
    blind_to: str = ""
    guard: str | None = None

    def __post_init__(self):
        if (self.row_value is None) == (self.resampled is None):
            raise ValueError(f"metric {self.name!r}: give exactly one of row_value, resampled")
        if self.aggregate is None and self.row_value is None:
            raise ValueError(f"metric {self.name!r}: a resampled metric needs an aggregate")
        if not (math.isfinite(self.max_drop) and self.max_drop > 0):
            raise ValueError(f"metric {self.name!r}: max_drop must be a finite number > 0")

    def range_on(self, scale: Scale) -> tuple[float, float]:
        """The values the metric can take on this rating scale."""
        return self.range if self.range is not None else (0.0, float(scale[1] - scale[0]))

    def value(self, human: np.ndarray, pred: np.ndarray, scale: Scale) -> float:
        if not len(human):
            return float("nan")
        if self.aggregate is not None:
            return float(self.aggregate(human, pred, scale))
        return float(np.mean(self.row_value(human, pred, scale)))

    def weighted(self, W: np.ndarray, human: np.ndarray, pred: np.ndarray,
                 scale: Scale) -> np.ndarray:
        """The metric on every resample of the rows (row i drawn W[b, i] times)."""
        if self.resampled is not None:
            return self.resampled(W, human, pred, scale)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (W @ self.row_value(human, pred, scale)) / W.sum(axis=1)

    def degradation(self, reference: float, candidate: float) -> float:
        """How much worse the candidate is; positive is worse."""
        return reference - candidate if self.higher_is_better else candidate - reference


def agreement_rows(tolerance: int) -> RowFn:
    """100 where |rounded prediction - rounded human| <= tolerance, else 0."""
    return lambda h, p, scale: (np.abs(round_rating(p, scale) - round_rating(h, scale))
                                <= tolerance) * 100.0


METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Adding a metric is this one call: the metric table, the bootstrap, the gate and
    the outputs all read it from the registry."""
    METRICS[metric.name] = metric
    return metric


LOCATION_GUARD = "mean_absolute_error"  # sees any shift of the predictions, in rating points

for _metric in (
    Metric("exact_agreement", True, "percentage points",
           "percent of rows where rounded prediction equals rounded human rating",
           aggregate=exact_agreement, row_value=agreement_rows(0), flip_tolerance=0,
           range=(0.0, 100.0), max_drop=1.0,
           blind_to="changes that stay within one rounding step"),
    Metric("adjacent_agreement", True, "percentage points",
           "percent of rows where they differ by at most 1",
           aggregate=adjacent_agreement, row_value=agreement_rows(1), flip_tolerance=1,
           range=(0.0, 100.0), max_drop=1.0,
           blind_to="changes of up to one rating point", guard=LOCATION_GUARD),
    Metric("quadratic_kappa", True, "kappa",
           "Cohen's kappa with quadratic weights on the rounded values",
           aggregate=quadratic_kappa, resampled=w_kappa, range=(-1.0, 1.0), max_drop=0.02,
           blind_to="part of a shift or rescaling (chance correction re-centres both "
                    "marginals)", guard=LOCATION_GUARD),
    Metric("spearman", True, "correlation",
           "Spearman correlation of raw prediction vs human mean",
           aggregate=spearman, resampled=w_spearman, range=(-1.0, 1.0), max_drop=0.02,
           blind_to="any shift or monotone rescaling of the raw predictions",
           guard=LOCATION_GUARD),
    Metric("mean_absolute_error", False, "rating points",
           "mean |clipped prediction - human mean| (lower is better)",
           aggregate=mae, row_value=lambda h, p, scale: np.abs(np.clip(p, *scale) - h),
           range=None, max_drop=0.05, blind_to="errors that cancel in the mean"),
):
    register_metric(_metric)


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise KeyError(choices_error("metric", name, METRICS))
    return METRICS[name]


def pairs(human: pd.DataFrame, predictions: np.ndarray, mask: np.ndarray,
          dimension: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(human, prediction, rows) for one slice and dimension, unrated pairs dropped."""
    dims = list(human.columns)
    h = human.to_numpy()[mask]
    p = predictions[mask]
    if dimension != ALL_DIMENSIONS:
        j = dims.index(dimension)
        h, p = h[:, j], p[:, j]
        rated = ~np.isnan(h)
        return h[rated], p[rated], int(rated.sum())
    rated = ~np.isnan(h)
    return h[rated], p[rated], int(rated.any(axis=1).sum())


def pair_weights(weights: np.ndarray, human: pd.DataFrame, mask: np.ndarray,
                 dimension: str) -> np.ndarray:
    """Each rated pair's design weight, aligned with what ``pairs`` returns."""
    h = human.to_numpy()[mask]
    w = np.broadcast_to(weights[mask][:, None], h.shape)
    if dimension != ALL_DIMENSIONS:
        j = list(human.columns).index(dimension)
        return w[:, j][~np.isnan(h[:, j])]
    return w[~np.isnan(h)]


def compute_metrics(human: pd.DataFrame, scorer_predictions: dict[str, np.ndarray],
                    masks: pd.DataFrame, scale: Scale,
                    raters: dict[str, np.ndarray] | None = None,
                    only: list[str] | None = None,
                    weights: np.ndarray | None = None) -> pd.DataFrame:
    """Tidy frame: scorer, slice, dimension, metric, n, value (NaN where undefined),
    with the human ceiling as scorer ``_human_ceiling`` when ``raters`` are given;
    ``only`` the named metrics when given. ``weights`` (1 / inclusion probability per
    row, a rating plan's) make every value a design-weighted (Hajek) estimate of the
    population's, through each metric's weighted form."""
    chosen = {n: m for n, m in METRICS.items() if only is None or n in only}
    records = []
    dimensions = [*human.columns, ALL_DIMENSIONS]
    for scorer, predictions in scorer_predictions.items():
        for slice_name in masks.columns:
            mask = masks[slice_name].to_numpy()
            for dimension in dimensions:
                h, p, n = pairs(human, predictions, mask, dimension)
                w = None if weights is None else pair_weights(weights, human, mask, dimension)
                for metric_name, metric in chosen.items():
                    value = metric.value(h, p, scale) if w is None or not len(h) else \
                        float(metric.weighted(w[None, :], h, p, scale)[0])
                    records.append((scorer, slice_name, dimension, metric_name, n, value))
    frame = pd.DataFrame.from_records(
        records, columns=["scorer", "slice", "dimension", "metric", "n", "value"])
    if raters is None:
        return frame
    return pd.concat([frame, compute_human_ceiling(raters, masks, scale)], ignore_index=True)


def rater_pairs(raters: dict[str, np.ndarray], mask: np.ndarray,
                dimension: str) -> tuple[np.ndarray, np.ndarray]:
    """(first rater, second rater) over every pair of raters and every row where both
    rated, for one dimension or pooled over all (``_all``)."""
    dims = list(raters) if dimension == ALL_DIMENSIONS else [dimension]
    firsts, seconds = [], []
    for d in dims:
        ratings = raters[d][mask]
        for i in range(ratings.shape[1]):
            for j in range(i + 1, ratings.shape[1]):
                both = ~np.isnan(ratings[:, i]) & ~np.isnan(ratings[:, j])
                firsts.append(ratings[both, i])
                seconds.append(ratings[both, j])
    if not firsts:
        return np.array([]), np.array([])
    return np.concatenate(firsts), np.concatenate(seconds)


def compute_human_ceiling(raters: dict[str, np.ndarray], masks: pd.DataFrame,
                          scale: Scale) -> pd.DataFrame:
    """Rater-vs-rater agreement per slice and dimension, with the same metrics, where the
    sample has two or more raters (an empty frame otherwise)."""
    if all(r.shape[1] < 2 for r in raters.values()):
        return pd.DataFrame(columns=["scorer", "slice", "dimension", "metric", "n", "value"])
    records = []
    for slice_name in masks.columns:
        mask = masks[slice_name].to_numpy()
        for dimension in [*raters, ALL_DIMENSIONS]:
            first, second = rater_pairs(raters, mask, dimension)
            for metric_name, metric in METRICS.items():
                value = metric.value(first, second, scale)
                records.append((HUMAN_CEILING, slice_name, dimension, metric_name,
                                len(first), value))
    return pd.DataFrame.from_records(
        records, columns=["scorer", "slice", "dimension", "metric", "n", "value"])
