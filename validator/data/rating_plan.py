"""Read a rating plan (``sample.rating_plan``) and give every gate row its design.

Every gate row gets ``rated`` (a rating in some rater column), ``inclusion_probability``
(the probability the row was chosen for rating, given the pool) and ``stratum``. Without
a plan the rated rows are taken as a uniform subsample: probability n_rated / n_rows,
stratum ``uniform``. With a plan (written by ``validator plan-ratings``) both come from
the plan, after checking that it still describes this sample: the same pool (the
sha256 of the gate rows' ids), every planned id present, and no rated row the plan did
not choose. Any mismatch is exit 2 naming the plan file and the problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from validator.data.design import (Allocation, assign_strata, pool_ids_sha256, row_bounds,
                                   select)
from validator.errors import SampleError

REQUIRED = ("id", "inclusion_probability", "stratum", "phase", "pool_ids_sha256", "seed")
PHASES = {"to_rate", "rated", "not_chosen"}


def _examples(ids) -> str:
    ids = sorted(map(str, ids))
    return ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def read_plan(path: Path) -> pd.DataFrame:
    """The plan file indexed by id; exit 2 naming the file and what is malformed."""
    if not path.is_file():
        raise SampleError(f"{path}: rating plan not found (sample.rating_plan)")
    try:
        plan = pd.read_csv(path, dtype={"id": str, "stratum": str, "phase": str,
                                        "pool_ids_sha256": str}, keep_default_na=False)
    except Exception as exc:  # pandas raises many types for malformed files
        raise SampleError(f"{path}: cannot read the rating plan "
                          f"({exc.__class__.__name__})") from exc
    missing = [c for c in REQUIRED if c not in plan.columns]
    if missing:
        raise SampleError(f"{path}: not a rating plan: missing column(s) {', '.join(missing)} "
                          f"(write it with validator plan-ratings)")
    probability = pd.to_numeric(plan["inclusion_probability"], errors="coerce")
    bad = plan["id"][~((probability > 0) & (probability <= 1))]
    if len(bad):
        raise SampleError(f"{path}: column inclusion_probability must be in (0, 1]; "
                          f"rows {_examples(bad)}")
    phases = set(plan["phase"]) - PHASES
    if phases:
        raise SampleError(f"{path}: column phase holds {_examples(phases)}; "
                          f"valid: {', '.join(sorted(PHASES))}")
    if plan["id"].duplicated().any():
        raise SampleError(f"{path}: duplicate ids {_examples(plan['id'][plan['id'].duplicated()])}")
    if plan["pool_ids_sha256"].nunique() != 1:
        raise SampleError(f"{path}: column pool_ids_sha256 must hold one value")
    seed = pd.to_numeric(plan["seed"], errors="coerce")
    if seed.nunique() != 1 or not seed.iloc[0] >= 0 or seed.iloc[0] != int(seed.iloc[0]):
        raise SampleError(f"{path}: column seed must hold one integer >= 0")
    plan = plan.assign(inclusion_probability=probability, seed=seed.astype(int)).set_index("id")
    check_probabilities(plan, path)
    check_selection(plan, path)
    return plan


def check_probabilities(plan: pd.DataFrame, path: Path) -> None:
    """Every probability must follow from the plan's own strata and phases (stratified
    sampling after earlier uniform ratings: r0 + (1 - r0) n_h / N_h, validator.data.design),
    so an edited probability cannot reweigh the rated rows."""
    pool = plan["phase"] != "rated"
    chosen = (plan["phase"] == "to_rate").groupby(plan["stratum"]).sum()
    size = pool.groupby(plan["stratum"]).sum()
    share = (chosen / size.where(size > 0)).fillna(0.0)
    earlier = float((~pool).mean())
    expected = earlier + (1.0 - earlier) * plan["stratum"].map(share).to_numpy()
    off = plan.index[np.abs(plan["inclusion_probability"].to_numpy() - expected) > 1e-6]
    if len(off):
        raise SampleError(f"{path}: inclusion_probability of rows {_examples(off)} does not "
                          f"follow from the plan's strata and phases (r0 + (1 - r0) n_h/N_h); "
                          f"the file was edited: make a new plan with validator plan-ratings")


def check_selection(plan: pd.DataFrame, path: Path) -> None:
    """The ``to_rate`` rows must be the seeded draw ``validator plan-ratings`` makes from
    the plan's own strata and counts (validator.data.design.select): rows picked knowing
    the ratings (the rows where a candidate looks best, the counts kept) would bias every
    estimate while the probabilities stay consistent."""
    pool = plan[plan["phase"] != "rated"]
    planned = (pool["phase"] == "to_rate").groupby(pool["stratum"], sort=True).sum()
    allocation = Allocation(pd.DataFrame({"planned": planned}))
    drawn = select(pool["stratum"], allocation, int(plan["seed"].iloc[0]))
    listed = pd.Index(sorted(pool.index[pool["phase"] == "to_rate"]), name="id")
    if not drawn.equals(listed):
        off = drawn.symmetric_difference(listed)
        raise SampleError(f"{path}: the to_rate rows are not the seeded draw from the plan's "
                          f"strata ({len(off)} rows differ: {_examples(off)}); rows chosen "
                          f"by hand bias the estimates: make a new plan with "
                          f"validator plan-ratings")


def uniform_design(rated: np.ndarray, index: pd.Index) -> pd.DataFrame:
    share = rated.sum() / len(rated)
    return pd.DataFrame({"rated": rated, "inclusion_probability": share,
                         "stratum": "uniform"}, index=index)


def planned_design(plan: pd.DataFrame, path: Path, rated: np.ndarray,
                   index: pd.Index) -> pd.DataFrame:
    """The plan's columns for the gate rows, after checking it fits this sample."""
    absent = plan.index.difference(index)
    if len(absent):
        raise SampleError(f"{path}: {len(absent)} planned ids are missing from the sample's "
                          f"gate rows: {_examples(absent)}")
    if plan["pool_ids_sha256"].iloc[0] != pool_ids_sha256(index):
        raise SampleError(f"{path}: the sample's gate rows changed since the plan was made "
                          f"(pool_ids_sha256 differs); make a new plan from a run on "
                          f"this sample")
    phase = plan["phase"].reindex(index)
    outside = index[rated & (phase == "not_chosen").to_numpy()]
    if len(outside):
        raise SampleError(f"{path}: {len(outside)} rated rows were not chosen by the plan "
                          f"(phase not_chosen): {_examples(outside)}; rate only the "
                          f"plan's to_rate rows, or remove those ratings")
    return pd.DataFrame({"rated": rated,
                         "inclusion_probability": plan["inclusion_probability"].reindex(index),
                         "stratum": plan["stratum"].reindex(index)}, index=index)


def design_columns(human: pd.DataFrame, plan_path: Path | None) -> pd.DataFrame:
    """rated / inclusion_probability / stratum per gate row (index of ``human``)."""
    rated = human.notna().any(axis=1).to_numpy()
    if plan_path is None:
        return uniform_design(rated, human.index)
    return planned_design(read_plan(plan_path), plan_path, rated, human.index)


def check_strata(stratum: pd.Series, reference: np.ndarray, candidates: dict[str, np.ndarray],
                 dimensions: list[str], masks: pd.DataFrame, scale: tuple[int, int],
                 metric: str, path: str) -> None:
    """A plan's strata must be the ones ``validator plan-ratings`` gives for this run's
    predictions and slices: a stratum drawn by hand (its rows chosen knowing the ratings,
    the wins of a candidate in a stratum of unrated agreeing rows) could reweigh the
    rated rows at will while its probabilities stay consistent. Exit 2 naming the rows."""
    columns = lambda values: {d: values[:, j] for j, d in enumerate(dimensions)}
    bounds = row_bounds(columns(reference), {c: columns(v) for c, v in candidates.items()},
                        scale, metric)
    expected = assign_strata(bounds, masks.set_axis(stratum.index))
    off = stratum.index[stratum.to_numpy() != expected.to_numpy()]
    if len(off):
        first = off[0]
        raise SampleError(f"{path}: the strata of {len(off)} rows are not the ones this run's "
                          f"predictions and slices give (row {first}: plan "
                          f"{stratum[first]!r}, this run {expected[first]!r}; also "
                          f"{_examples(off[1:]) or 'no other'}); a plan is made by "
                          f"validator plan-ratings from a run with the same candidates, "
                          f"slices and predictions: make a new plan from this run")
