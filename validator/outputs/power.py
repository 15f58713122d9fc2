"""Power before work: per slice, what its rated rows can resolve, read from summary.json.

For each slice: its rated and pool rows, the smallest degradation its ratings can rule
out (the largest ``detectable_degradation`` of its pooled-dimension checks, over
candidates), and the most rated rows any of its checks would need to show a lossless
candidate within max_drop, under uniform rating and with ratings on flipped rows only
(``ratings_needed_uniform`` / ``ratings_needed_targeted``). The terminal, summary.md and
report.html all print these lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from validator.metrics import ALL_DIMENSIONS
from validator.record.schema import RunRecord


@dataclass(frozen=True)
class SlicePower:
    slice: str
    rated_rows: int | None
    pool_rows: int | None
    detectable: float | None        # smallest degradation the ratings can rule out
    needed_uniform: int | None      # the most ratings any check needs, uniform rating
    needed_targeted: int | None     # the same, rating flipped rows only

    def sentence(self, unit: str) -> str:
        rows = f"{_count(self.rated_rows)} rated + {_count(self.pool_rows)} pool rows"
        seen = ("cannot rule out any degradation yet" if self.detectable is None else
                f"rules out a degradation of {self.detectable:.3g} {unit} or more")
        needs = (f"max_drop needs up to {_count(self.needed_uniform)} ratings uniformly, "
                 f"{_count(self.needed_targeted)} on flipped rows")
        return f"{self.slice}: {rows}; {seen}; {needs}"


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _largest(values):
    known = [v for v in values if v is not None]
    return max(known) if known else None


def slice_power(summary: RunRecord) -> list[SlicePower]:
    out = []
    for s in summary.slices:
        checks = [c for c in summary.checks if c.slice == s.name]
        pooled = [c for c in checks if c.dimension == ALL_DIMENSIONS]
        out.append(SlicePower(s.name, s.rated_rows, s.pool_rows,
                              _largest(c.detectable_degradation for c in pooled),
                              _largest(c.ratings_needed_uniform for c in checks),
                              _largest(c.ratings_needed_targeted for c in checks)))
    return out


def power_lines(summary: RunRecord) -> list[str]:
    """One sentence per slice (the terminal's and summary.md's power statement)."""
    return [p.sentence(summary.gate.unit) for p in slice_power(summary)]
