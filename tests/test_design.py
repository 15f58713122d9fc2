"""The rating plan's design (validator.data.design): strata, allocation, selection and
the stated power, against brute force and simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from validator.data import design


def pool(rows: int = 4000, flip_rate: float = 0.06, seed: int = 3):
    """Predictions of a reference and one candidate on two dimensions, three slices."""
    rng = np.random.default_rng(seed)
    reference = {d: rng.uniform(1, 5, rows) for d in ("a", "b")}
    candidate = {d: np.where(rng.random(rows) < flip_rate, np.clip(v + 1, 1, 5), v)
                 for d, v in reference.items()}
    segment = rng.choice(["big", "mid", "small"], rows, p=[0.6, 0.3, 0.1])
    masks = pd.DataFrame({"all": True, **{s: segment == s for s in ("big", "mid", "small")}},
                         index=pd.Index([f"r{i:05d}" for i in range(rows)], name="id"))
    return reference, {"cand": candidate}, masks


def plan(budget: int, floor: int = 50, share: float = 0.1):
    reference, candidates, masks = pool()
    bounds = design.row_bounds(reference, candidates, (1, 5), "exact_agreement")
    strata = design.assign_strata(bounds, masks)
    allocation = design.allocate(strata, design.row_weights(bounds, masks),
                                 design.home_slices(masks), budget, floor, share)
    return bounds, strata, allocation, masks


def test_row_bounds_are_the_flip_indicator_for_agreement_and_the_gap_for_mae():
    reference = {"a": np.array([1.2, 2.4, 3.4, 4.9])}
    candidate = {"c": {"a": np.array([1.4, 3.4, 3.4, 6.0])}}
    flips = design.row_bounds(reference, candidate, (1, 5), "exact_agreement")[("c", "a")]
    assert flips.tolist() == [0.0, 100.0, 0.0, 0.0]
    gaps = design.row_bounds(reference, candidate, (1, 5), "mean_absolute_error")[("c", "a")]
    assert np.allclose(gaps, [0.2, 1.0, 0.0, 0.1])  # clipped to the scale first


def test_home_slice_is_the_smallest_slice_holding_the_row():
    masks = pd.DataFrame({"all": [True] * 3, "wide": [True, True, False],
                          "narrow": [True, False, False]})
    assert design.home_slices(masks).tolist() == ["narrow", "wide", "all"]


@pytest.mark.parametrize("budget", [40, 400, 1200, 3999])
def test_allocation_spends_the_budget_within_every_stratum(budget):
    _, strata, allocation, _ = plan(budget)
    table = allocation.strata
    assert table["planned"].sum() == budget
    assert (table["planned"] >= 1).all() and (table["planned"] <= table["rows"]).all()
    assert np.allclose(table["probability"], table["planned"] / table["rows"])
    assert table["rows"].sum() == len(strata)


def test_ratings_go_where_predictions_differ_but_every_row_keeps_a_chance():
    _, _, allocation, _ = plan(600)
    table = allocation.strata
    same = table[table.index.str.endswith("/same")]
    differs = table[~table.index.str.endswith("/same")]
    assert differs["probability"].min() > 5 * same["probability"].max()
    share = 0.1 * 600 / table["rows"].sum()
    assert (same["probability"] >= share - 1 / same["rows"]).all()  # the uniform share


def test_each_slice_gets_its_floor_of_rated_rows():
    _, strata, allocation, masks = plan(300, floor=60)
    probability = strata.map(allocation.probability).to_numpy()
    for name in ("big", "mid", "small"):
        assert probability[masks[name].to_numpy()].sum() >= 60 - 1


def test_selection_is_seeded_and_ignores_the_row_order():
    _, strata, allocation, _ = plan(500)
    first = design.select(strata, allocation, seed=5)
    shuffled = strata.sample(frac=1.0, random_state=1)
    assert first.equals(design.select(shuffled, allocation, seed=5))
    assert not first.equals(design.select(strata, allocation, seed=6))
    counts = strata[first].value_counts().sort_index()
    assert counts.equals(allocation.strata["planned"].rename("count").rename_axis(None)
                         .reindex(counts.index))


def test_stated_power_bounds_the_horvitz_thompson_error_in_simulation():
    """The standard error behind ``ruled_out`` bounds the spread of the design-based
    (Horvitz-Thompson) degradation estimate over repeated selections, with row
    differences as large as the bound allows (the worst case)."""
    bounds, strata, allocation, masks = plan(500)
    b = bounds[("cand", "a")]
    rng = np.random.default_rng(0)
    truth = b * rng.choice([-1.0, 1.0], len(b))  # |d| = b: the largest variance allowed
    probability = strata.map(allocation.probability).to_numpy()
    estimates = []
    for seed in range(400):
        chosen = strata.index.isin(design.select(strata, allocation, seed))
        estimates.append(np.sum(truth[chosen] / probability[chosen]) / len(b))
    z = 1.959964 + 0.841621
    stated_se = design.ruled_out(b, probability, 0.95) / z
    assert np.std(estimates) <= stated_se
    assert abs(np.mean(estimates) - truth.mean()) < 3 * stated_se / np.sqrt(400) * 3
    uniform = np.full(len(b), 500 / len(b))
    assert design.ruled_out(b, probability, 0.95) < 0.5 * design.ruled_out(b, uniform, 0.95)


def test_combined_probability_of_earlier_uniform_ratings_and_the_plan():
    assert np.allclose(design.combined_probability(np.array([0.0, 0.5, 1.0]), 100, 1000),
                       [0.1, 0.55, 1.0])


def test_pool_hash_ignores_the_order_of_ids():
    assert design.pool_ids_sha256(["b", "a"]) == design.pool_ids_sha256(["a", "b"])
    assert design.pool_ids_sha256(["a", "b"]) != design.pool_ids_sha256(["a", "b", "c"])
