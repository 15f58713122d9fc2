"""Where the gate's metric cannot see past the majority-rating baseline (what a scorer
would reach by always predicting the slice's most common human rating;
validator.judge.majority computes it).

It is recorded in summary.json as the pseudo-scorer ``_majority`` under ``metrics``
(every metric, every slice and dimension; for ``_all`` each dimension predicts its own
most common rating). When the reference's agreement beats it by less than
``BARELY_BEATS`` points, ratings are clustered on one value and an agreement metric
cannot tell a degraded candidate from one that collapses towards that value: the
report and summary.md say so and suggest a rank or error metric.
"""

from __future__ import annotations

from dataclasses import dataclass

from validator.judge.majority import MAJORITY
from validator.record.schema import RunRecord

AGREEMENT_METRICS = ("exact_agreement", "adjacent_agreement")
BARELY_BEATS = 5.0  # percentage points of agreement above always-the-majority
SUGGESTED = "spearman or mean_absolute_error"


@dataclass(frozen=True)
class Blind:
    """A slice and dimension where the reference barely beats always-the-majority."""
    slice: str
    dimension: str
    reference: float
    majority: float


def values_of(summary: RunRecord, scorer: str, metric: str) -> dict[tuple[str, str], float]:
    return {(m.slice, m.dimension): m.value for m in summary.metrics
            if m.scorer == scorer and m.metric == metric and m.value is not None}


def blind_spots(summary: RunRecord) -> list[Blind]:
    """Where the gate's agreement metric cannot detect degradation (empty for other
    metrics, and for records without the ``_majority`` baseline)."""
    metric = summary.gate.metric
    if metric not in AGREEMENT_METRICS:
        return []
    majority = values_of(summary, MAJORITY, metric)
    reference = values_of(summary, summary.reference.name, metric)
    spots = [Blind(s, d, reference[(s, d)], value) for (s, d), value in majority.items()
             if (s, d) in reference and reference[(s, d)] - value < BARELY_BEATS]
    return sorted(spots, key=lambda b: b.reference - b.majority)  # the blindest first


def blind_sentence(summary: RunRecord, spots: list[Blind], limit: int = 3) -> str | None:
    """One warning naming the blind slices and dimensions (the first ``limit``)."""
    if not spots:
        return None
    named = "; ".join(f"{b.slice} / {b.dimension} (reference {b.reference:.1f}, always the "
                      f"most common rating {b.majority:.1f})" for b in spots[:limit])
    more = f"; and {len(spots) - limit} more" if len(spots) > limit else ""
    return (f"{summary.gate.metric} cannot detect degradation where the reference beats "
            f"always predicting the most common human rating by less than "
            f"{BARELY_BEATS:g} points (ratings clustered on one value): {named}{more}. "
            f"Gate those with {SUGGESTED} as well.")
