"""Coverage and width of the gate's two-phase estimate on a simulated production stream.

Each run draws a pool of POOL rows from a known population (one dimension, a candidate
that moves the reference's rounded rating on about 10% of rows), rates BUDGET rows of
it either uniformly or on flips first (Poisson sampling with those inclusion
probabilities), and runs the gate's own ``slice_stats``. Prints, per design: the mean
estimate against the truth, the 95% CI's coverage of the production truth and its
median half-width, as JSON (also written beside this script). Usage: ``python benchmarks/bench_design_estimates.py [runs]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from validator.judge.design_estimates import flip_pairs
from validator.judge.stats import slice_stats
from validator.metrics import get_metric

SCALE, POOL, BUDGET = (1, 5), 3000, 300
RESAMPLES = 1000  # the gate's default bootstrap_resamples
METRIC = get_metric("exact_agreement")


def population(rng, n, loss=0.02):
    human = rng.integers(1, 6, n).astype(float)
    reference = np.clip(human + rng.normal(0, 0.6, n), 1, 5)
    agree = np.floor(reference + 0.5) == human
    flip = rng.random(n) < np.where(agree, 0.1 + loss / 2, 0.1 - loss / 2)
    candidate = np.where(flip, reference + np.where(reference > 3, -1.0, 1.0), reference)
    return human[:, None], reference[:, None], candidate[:, None]


def truth() -> float:
    h, r, c = population(np.random.default_rng(99), 1_000_000)
    return METRIC.value(h[:, 0], r[:, 0], SCALE) - METRIC.value(h[:, 0], c[:, 0], SCALE)


def designs(flipped: np.ndarray) -> dict[str, np.ndarray]:
    """Inclusion probabilities spending BUDGET ratings in expectation."""
    on_flips = min(1.0, 0.9 * BUDGET / max(flipped.sum(), 1))
    rest = (BUDGET - on_flips * flipped.sum()) / max((~flipped).sum(), 1)
    return {"uniform": np.full(len(flipped), BUDGET / len(flipped)),
            "flip-targeted": np.where(flipped, on_flips, rest)}


def main(runs: int) -> None:
    target, rng = truth(), np.random.default_rng(1)
    found: dict[str, list] = {}
    for run in range(runs):
        human, reference, candidate = population(rng, POOL)
        flipped = flip_pairs(METRIC, reference, candidate, SCALE)[:, 0] > 0
        for name, probability in designs(flipped).items():
            rated = rng.random(POOL) < probability
            weight = np.where(rated, 1 / probability, 0.0)
            stats = slice_stats(METRIC, np.where(rated[:, None], human, np.nan), reference,
                                {"c": candidate}, ["d"], SCALE, 0.95, RESAMPLES,
                                np.random.default_rng([run, len(name)]), weight)[("c", "d")]
            found.setdefault(name, []).append(
                (stats.design.degradation, stats.ci_low <= target <= stats.ci_high,
                 (stats.ci_high - stats.ci_low) / 2))
    result = {"truth_points": round(target, 3), "pool_rows": POOL, "budget": BUDGET,
              "runs": runs, "designs": {}}
    for name, rows in found.items():
        est, covered, half = map(np.array, zip(*rows))
        result["designs"][name] = {"mean_estimate": round(float(est.mean()), 3),
                                   "coverage": round(float(covered.mean()), 3),
                                   "median_ci_half_width": round(float(np.median(half)), 3)}
    text = json.dumps(result, indent=2)
    print(text)
    Path(__file__).with_suffix(".json").write_text(text + "\n")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
