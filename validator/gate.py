"""The gate: one check per candidate x slice x dimension, and the run's verdict.

A check fails when the candidate's degradation on the gate metric exceeds its
max_drop; it is inconclusive when the slice has fewer rated rows than min_rows or
the metric is undefined there. A configured slice with no rows fails. The run fails
closed: it exits 0 only when no check failed and some check could decide.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

from validator.config import Config
from validator.errors import ConfigError
from validator.metrics import get_metric

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass(frozen=True)
class Check:
    candidate: str
    slice: str
    dimension: str
    metric: str
    n: int
    reference: float
    candidate_value: float
    degradation: float
    ci_low: float | None
    ci_high: float | None
    max_drop: float
    verdict: str
    reason: str

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()}


@dataclass(frozen=True)
class GateResult:
    verdict: str
    exit_code: int
    checks: list[Check]

    def by_verdict(self, verdict: str) -> list[Check]:
        return [c for c in self.checks if c.verdict == verdict]


def judge(n: int, slice_rows: int, degradation: float, max_drop: float,
          min_rows: int) -> tuple[str, str]:
    if slice_rows == 0:
        return FAIL, "the slice has no rows in the gate sample"
    if n < min_rows:
        return INCONCLUSIVE, f"only {n} rated rows, fewer than min_rows {min_rows}"
    if math.isnan(degradation):
        return INCONCLUSIVE, "the metric is undefined on this slice (constant ratings)"
    if degradation > max_drop:
        return FAIL, f"degradation {degradation:.3g} exceeds max_drop {max_drop:g}"
    return PASS, f"degradation {degradation:.3g} within max_drop {max_drop:g}"


def build_checks(metrics: pd.DataFrame, slice_rows: dict[str, int], config: Config) -> list[Check]:
    gate = config.gate
    try:
        metric = get_metric(gate.metric)
    except KeyError as exc:
        raise ConfigError(f"{config.source}: gate.metric: {exc.args[0]}") from exc
    for i, override in enumerate(gate.overrides):
        if override.slice is not None and override.slice not in slice_rows:
            raise ConfigError(f"{config.source}: gate.overrides[{i}].slice: unknown slice "
                              f"{override.slice!r} (defined: {', '.join(slice_rows)})")
    values = metrics[metrics.metric == gate.metric].set_index(["scorer", "slice", "dimension"])
    checks = []
    for candidate in (c.name for c in config.candidates):
        for (slice_name, dimension), row in values.loc[candidate].iterrows():
            reference = float(values.loc[(config.reference.name, slice_name, dimension), "value"])
            degradation = metric.degradation(reference, float(row.value))
            max_drop = gate.max_drop_for(candidate, slice_name, dimension)
            verdict, reason = judge(int(row.n), slice_rows[slice_name], degradation, max_drop,
                                    gate.min_rows)
            checks.append(Check(candidate, slice_name, dimension, gate.metric, int(row.n),
                                reference, float(row.value), degradation, None, None,
                                max_drop, verdict, reason))
    return checks


def decide(checks: list[Check], on_inconclusive: str) -> GateResult:
    verdicts = {c.verdict for c in checks}
    if FAIL in verdicts:
        return GateResult(FAIL, 1, checks)
    if INCONCLUSIVE in verdicts and (on_inconclusive == "fail" or PASS not in verdicts):
        return GateResult(INCONCLUSIVE, 1, checks)
    if PASS not in verdicts:
        return GateResult(INCONCLUSIVE, 1, checks)
    return GateResult(PASS, 0, checks)


def evaluate_gate(metrics: pd.DataFrame, slice_rows: dict[str, int], config: Config) -> GateResult:
    return decide(build_checks(metrics, slice_rows, config), config.gate.on_inconclusive)
