"""The rating plan's design: strata, allocation and inclusion probabilities.

Pure functions of the predictions (never of ratings), so a plan can be made before any
rating is spent and cannot be steered by what raters said.

Why it helps: on a row where a candidate's rounded prediction equals the reference's,
the agreement difference is exactly 0 whatever the human says. Only rows where the
predictions differ carry information about a degradation, so ratings are spent there.

The design, in order:

1. **Per-row bound** ``b`` for every (candidate, dimension): the most the row can move
   that check's degradation, in the metric's unit. Agreement metrics: 100 when the
   rounded predictions differ (a *flip*), else 0. Mean absolute error:
   ``|clip(candidate) - clip(reference)|``. Kappa and Spearman: the flip indicator (a
   proxy; they have no row values).
2. **Strata**: the row's *home slice* (the smallest slice holding it; ``all`` when no
   other does) x its *level*: ``same`` (no check can move), ``differs-low`` or
   ``differs-high`` (mean b^2 over every candidate and dimension at or below / above
   the median of the differing rows). One rated row serves every candidate and
   dimension, so the level pools them all.
3. **Allocation** of the budget ``n`` over strata: first a floor (each home slice gets
   ``floor`` rows, spread over its strata by Neyman weight) and a uniform share (every stratum
   at least ``uniform_share * n * N_h / N``, so every row has a chance and absolute
   values stay estimable); the rest by **Neyman allocation** ``n_h ~ N_h * S_h``, with
   ``S_h^2`` the stratum's mean of ``a_i^2 = sum over the row's slices s of
   mean_{c,d}(b_icd^2) / N_s^2``. That minimises the summed variance of the
   Horvitz-Thompson degradation estimates of all checks (each check's variance is
   ``sum_i b_i^2 / pi_i / N_s^2`` at most), small slices weighing as much as large ones.
   No stratum gets more rows than it has; every non-empty stratum gets at least one.
4. **Selection**: simple random sampling without replacement within each stratum
   (seeded), so the inclusion probability of a row is ``n_h / N_h``.

Rows already rated when the plan is made (a uniform subsample of rate ``r0``) are kept;
the combined inclusion probability of any row is then ``r0 + (1 - r0) * n_h / N_h``
(the union of two independent designs).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from validator.metrics import get_metric, round_rating

LEVELS = ("same", "differs-low", "differs-high")
PLANNING_POWER = 0.8  # the power at which "can rule out" is stated


@dataclass(frozen=True)
class Allocation:
    """Rows to rate per stratum: ``rows`` (N_h, pool rows) and ``planned`` (n_h)."""
    strata: pd.DataFrame  # index stratum; columns rows, planned, probability

    @property
    def probability(self) -> pd.Series:
        return self.strata["probability"]


def pool_ids_sha256(ids) -> str:
    """The pool's identity: sha256 of its sorted ids, one per line."""
    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode("utf-8")).hexdigest()


def row_bounds(reference: dict[str, np.ndarray], candidates: dict[str, dict[str, np.ndarray]],
               scale: tuple[int, int], metric_name: str) -> dict[tuple[str, str], np.ndarray]:
    """(candidate, dimension) -> per-row bound on the row's effect on the degradation."""
    metric = get_metric(metric_name)
    bounds = {}
    for candidate, predictions in candidates.items():
        for dimension, values in predictions.items():
            ref = reference[dimension]
            if metric.flip_tolerance is None and metric.row_value is not None:
                bound = np.abs(np.clip(values, *scale) - np.clip(ref, *scale))
            else:
                flips = round_rating(values, scale) != round_rating(ref, scale)
                bound = flips * (100.0 if metric.flip_tolerance is not None else 1.0)
            bounds[(candidate, dimension)] = np.asarray(bound, dtype=np.float64)
    return bounds


def home_slices(masks: pd.DataFrame) -> pd.Series:
    """The smallest slice holding each row (``all`` when none of the others does)."""
    named = masks.drop(columns=["all"], errors="ignore")
    if named.empty:
        return pd.Series("all", index=masks.index)
    sizes = named.sum().sort_values(kind="stable")
    ordered = named[sizes.index].to_numpy(dtype=bool)
    first = ordered.argmax(axis=1)
    home = np.where(ordered.any(axis=1), sizes.index.to_numpy()[first], "all")
    return pd.Series(home, index=masks.index)


def levels(mean_square: np.ndarray) -> np.ndarray:
    """same / differs-low / differs-high, split at the median of the differing rows."""
    differs = mean_square > 0
    cut = np.median(mean_square[differs]) if differs.any() else 0.0
    return np.where(~differs, LEVELS[0], np.where(mean_square <= cut, LEVELS[1], LEVELS[2]))


def row_weights(bounds: dict[tuple[str, str], np.ndarray], masks: pd.DataFrame) -> np.ndarray:
    """a_i^2: each slice's mean b^2 over its checks, divided by the slice's size^2,
    summed over the row's slices (``all`` included)."""
    mean_square = np.mean([b ** 2 for b in bounds.values()], axis=0)
    sizes = masks.sum().to_numpy(dtype=np.float64)
    inverse = np.divide(1.0, sizes ** 2, out=np.zeros_like(sizes), where=sizes > 0)
    return mean_square * (masks.to_numpy(dtype=np.float64) @ inverse)


def assign_strata(bounds: dict[tuple[str, str], np.ndarray], masks: pd.DataFrame) -> pd.Series:
    """Each row's stratum, ``{home slice}/{level}``."""
    mean_square = np.mean([b ** 2 for b in bounds.values()], axis=0)
    return home_slices(masks) + "/" + levels(mean_square)


def _water_fill(extra: float, weights: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Spread ``extra`` in proportion to ``weights`` without exceeding ``room``."""
    given = np.zeros_like(room)
    active = (weights > 0) & (room > 0)
    while extra > 1e-9 and active.any():
        share = extra * weights * active / weights[active].sum()
        capped = np.minimum(share, room - given)
        given += capped
        extra -= capped.sum()
        active &= (room - given) > 1e-9
    return given


def _integerise(target: np.ndarray, budget: int, rows: np.ndarray) -> np.ndarray:
    """Largest remainders, at least 1 and at most N_h per non-empty stratum."""
    planned = np.clip(np.floor(target), 1, rows).astype(int)
    order = np.argsort(-(target - np.floor(target)), kind="stable")
    for index in np.concatenate([order, order]):
        gap = budget - planned.sum()
        if gap == 0:
            break
        step = 1 if gap > 0 else -1
        if 1 <= planned[index] + step <= rows[index]:
            planned[index] += step
    return planned


def _floor_shares(home_of: np.ndarray, rows: np.ndarray, neyman: np.ndarray,
                  floor: int) -> np.ndarray:
    """``floor`` rows per home slice, spread over its strata by Neyman weight (then by
    size, once the differing rows are all taken), so the floor goes where predictions
    differ first."""
    shares = np.zeros_like(rows)
    for home in np.unique(home_of):
        mine = home_of == home
        wanted = min(floor, rows[mine].sum())
        shares[mine] = _water_fill(wanted, neyman[mine], rows[mine])
        shares[mine] += _water_fill(wanted - shares[mine].sum(), rows[mine],
                                    rows[mine] - shares[mine])
    return shares


def allocate(strata: pd.Series, weights: np.ndarray, home: pd.Series, budget: int,
             floor: int, uniform_share: float) -> Allocation:
    """n_h per stratum (module docstring, step 3); ``budget`` <= number of pool rows."""
    frame = pd.DataFrame({"stratum": strata.to_numpy(), "home": home.to_numpy(),
                          "weight": weights})
    grouped = frame.groupby("stratum", sort=True)
    rows = grouped.size().to_numpy(dtype=np.float64)
    spread = np.sqrt(grouped["weight"].mean().to_numpy())
    home_of = grouped["home"].first().to_numpy()
    base = np.maximum(_floor_shares(home_of, rows, rows * spread, floor),
                      uniform_share * budget * rows / rows.sum())
    base = np.maximum(base, 1.0)
    if base.sum() > budget:
        base *= budget / base.sum()
    target = base + _water_fill(budget - base.sum(), rows * spread, rows - base)
    if (budget - target.sum()) > 1e-6:  # every differing row taken: the rest uniformly
        target += _water_fill(budget - target.sum(), rows, rows - target)
    planned = _integerise(target, budget, rows.astype(int))
    table = pd.DataFrame({"rows": rows.astype(int), "planned": planned},
                         index=grouped.size().index)
    table["probability"] = table["planned"] / table["rows"]
    return Allocation(table)


def select(strata: pd.Series, allocation: Allocation, seed: int) -> pd.Index:
    """The ids to rate: a simple random sample of n_h ids per stratum (seeded; ids are
    sorted first, so the choice does not depend on the row order of the file)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for stratum, planned in allocation.strata["planned"].items():
        ids = np.sort(strata.index[strata.to_numpy() == stratum].astype(str).to_numpy())
        chosen.extend(rng.choice(ids, size=int(planned), replace=False))
    return pd.Index(sorted(chosen), name="id")


def combined_probability(plan_probability: np.ndarray, rated_before: int,
                         rows: int) -> np.ndarray:
    """Inclusion probability of the union: earlier uniform ratings, then the plan."""
    rate = rated_before / rows
    return rate + (1.0 - rate) * plan_probability


def ruled_out(bounds: np.ndarray, probability: np.ndarray, confidence: float) -> float:
    """The smallest degradation a check can rule out with ``PLANNING_POWER`` when the
    truth is no loss: (z_conf + z_power) x the Horvitz-Thompson standard error bound
    sqrt(sum b^2 / pi) / N over the slice's rows (production population: both phases)."""
    if not len(bounds):
        return float("nan")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2) + NormalDist().inv_cdf(PLANNING_POWER)
    return float(z * np.sqrt(np.sum(bounds ** 2 / probability)) / len(bounds))
