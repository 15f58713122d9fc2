"""The report's first screen, computed from summary.json only: the opening sentence
(the most convincing failures), one line per candidate of what to do, the candidate x
slice strip and the headline numbers.

What to do with a candidate:
- **ship**: none of its checks fails (and none is inconclusive, unless the gate only
  warns on those);
- **ship with fallback**: it fails on its own, but a routed candidate of the run that
  serves it and hands the listed slices back to the reference passes (the traffic share
  is the routed candidate's recorded ``traffic``), or ``validator recommend`` wrote a
  confirmed plan for it beside the run (``routing.yaml``; its traffic share is computed
  from predictions.parquet); a routed candidate that passes is itself shipped with
  fallback;
- **do not ship**: it fails (or cannot decide, when inconclusive checks block).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from validator.judge.gate import likely_loss, margin_binds
from validator.outputs.formats import guard_suffix
from validator.record.schema import CheckRecord, RunRecord, ScorerRecord
from validator.routing import Router

VERDICT_ORDER = {"fail": 0, "inconclusive": 1, "pass": 2}
CITED = 3          # failures named in the opening sentence
NAMED_SLICES = 6   # slices named in a decision line before "and N more"


def worst(verdicts) -> str:
    return min(verdicts, key=VERDICT_ORDER.__getitem__, default="pass")


def checks_of(summary: RunRecord, candidate: str) -> list[CheckRecord]:
    return [c for c in summary.checks if c.candidate == candidate]


def convincing(summary: RunRecord) -> list[CheckRecord]:
    """Failing checks, the largest lower CI bound of the degradation first (a failure
    without an interval last); inconclusive checks never."""
    return sorted((c for c in summary.checks if c.verdict == "fail"),
                  key=lambda c: (c.ci_low is None, -(c.ci_low or 0.0), -(c.degradation or 0.0)))


def _cite(c: CheckRecord, unit: str) -> str:
    where = f"{c.candidate} on {c.slice} / {c.dimension}{guard_suffix(c)}"
    if c.degradation is None:  # e.g. a configured slice without rows
        return f"{where} fails ({c.reason})"
    interval = ("" if c.ci_low is None else
                f", CI {c.ci_low:.3g} to {c.ci_high:.3g}")
    return (f"{where} loses {c.degradation:.3g} {c.unit or unit}"
            f"{interval}, threshold {c.max_drop:g}")


def opening(summary: RunRecord) -> str:
    """The verdict and, when it failed, the most convincing failures."""
    counts, gate = summary.counts, summary.gate
    total = counts.fail + counts.inconclusive + counts.passed
    blocking = gate.on_inconclusive == "fail"
    if summary.verdict == "pass":
        rest = (f" {counts.inconclusive} are inconclusive and only warn."
                if counts.inconclusive else "")
        return f"The gate PASSED: none of {total} checks fails.{rest}"
    if summary.verdict == "inconclusive":
        return (f"The gate could not decide (INCONCLUSIVE): no check fails, but "
                f"{counts.inconclusive} of {total} checks are inconclusive"
                f"{' and block the release' if blocking else ''}; each names the rated "
                f"rows it would need.")
    cited = "; ".join(_cite(c, gate.unit) for c in convincing(summary)[:CITED])
    return (f"The gate FAILED: {counts.fail} of {total} checks fail on {gate.metric}. "
            f"The most convincing (largest lower {gate.confidence:.0%} CI bound): {cited}.")


ROUTING_FILE = "routing.yaml"  # what validator recommend writes by default


@dataclass
class Plan:
    """A confirmed fallback plan that ``validator recommend`` wrote beside the run."""
    candidate: str
    fallback: list[str]
    share: float  # traffic share of the fallback slices (predictions.parquet)
    file: str
    elsewhere: dict[str, list[str]] = field(default_factory=dict)  # other candidate: slices


def read_plan(run_dir: Path, summary: RunRecord, predictions: pd.DataFrame) -> Plan | None:
    """RUN_DIR/routing.yaml as a plan for one of the run's candidates, or None."""
    path = run_dir / ROUTING_FILE
    if not path.is_file():
        return None
    router = Router.from_file(path)
    fallback = [r.slice for r in router.rules[:-1] if r.to == summary.reference.name]
    columns = [f"slice:{name}" for name in fallback]
    if router.default not in {s.name for s in summary.candidates} or \
            not set(columns) <= set(predictions.columns):
        return None
    weights = (predictions["traffic_weight"].to_numpy(dtype=float)
               if "traffic_weight" in predictions else np.ones(len(predictions)))
    routed = predictions[columns].to_numpy(dtype=bool).any(axis=1)
    return Plan(router.default, fallback, float(weights[routed].sum() / weights.sum()),
                path.name, _elsewhere([{"slice": r.slice, "to": r.to} for r in router.rules],
                                      summary.reference.name, router.default))


def _elsewhere(rules: list[dict], reference: str, default: str) -> dict[str, list[str]]:
    """Slices a route sends to a scorer other than the reference and its default."""
    out: dict[str, list[str]] = {}
    for rule in rules:
        if rule.get("slice") and rule.get("to") not in (reference, default):
            out.setdefault(rule["to"], []).append(rule["slice"])
    return out


def _and_elsewhere(elsewhere: dict[str, list[str]]) -> str:
    return "".join(f" and with {_names(slices)} sent to {to}"
                   for to, slices in elsewhere.items())


@dataclass
class Decision:
    candidate: str
    action: str     # ship | ship with fallback | do not ship
    sentence: str
    recommend: bool = False  # point to `validator recommend` for a fallback plan

    @property
    def css(self) -> str:
        return {"ship": "pass", "ship with fallback": "inconclusive"}.get(self.action, "fail")


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:NAMED_SLICES])
    return shown + (f" and {len(names) - NAMED_SLICES} more" if len(names) > NAMED_SLICES
                    else "")


def _route(summary: RunRecord,
           scorer: ScorerRecord) -> tuple[str, list[str], float, dict[str, list[str]]]:
    """(default scorer, slices falling back to the reference, reference traffic share,
    slices sent to other candidates)."""
    rules = (scorer.recipe or {}).get("rules", [])
    reference = summary.reference.name
    fallback = [r["slice"] for r in rules if r.get("to") == reference and r.get("slice")]
    default = next((r["default"] for r in rules if "default" in r), scorer.name)
    return (default, fallback, (scorer.traffic or {}).get(reference, 0.0),
            _elsewhere(rules, reference, default))


def candidate_verdict(summary: RunRecord, name: str) -> str:
    checks = checks_of(summary, name)
    verdicts = {c.verdict for c in checks}
    if "fail" in verdicts:
        return "fail"
    likely = any(likely_loss(c) for c in checks)  # blocks even under warn
    if "inconclusive" in verdicts and (summary.gate.on_inconclusive == "fail" or likely):
        return "inconclusive"
    return "pass"


def _failing_slices(summary: RunRecord, name: str) -> list[str]:
    failing = {c.slice for c in checks_of(summary, name) if c.verdict == "fail"}
    return [s.name for s in summary.slices if s.name in failing]


def _with_fallback(summary: RunRecord, name: str, slices: list[str], share: float,
                   source: str, elsewhere: dict[str, list[str]]) -> Decision:
    return Decision(name, "ship with fallback",
                    f"Ship {name} only with fallback to {summary.reference.name} on "
                    f"{_names(slices)} ({share:.1%} of traffic){_and_elsewhere(elsewhere)}, "
                    f"{source}; alone it fails on {_names(_failing_slices(summary, name))}.")


def _blocked(summary: RunRecord, scorer: ScorerRecord, verdict: str) -> Decision:
    checks = checks_of(summary, scorer.name)
    if verdict == "inconclusive":
        open_checks = [c for c in checks if c.verdict == "inconclusive"]
        needed = max((c.rows_needed or 0 for c in open_checks), default=0)
        more = f"; up to {needed} rated rows per slice would decide them" if needed else ""
        unseen = sum(margin_binds(c) for c in open_checks)
        if unseen:
            more += (f"; {unseen} need more scored rows of their slices (too few to rule out "
                     f"flips they do not show), not ratings")
        return Decision(scorer.name, "do not ship",
                        f"Do not ship {scorer.name} yet: no check fails, but "
                        f"{len(open_checks)} cannot decide{more}.")
    failing = [c for c in checks if c.verdict == "fail"]
    return Decision(scorer.name, "do not ship",
                    f"Do not ship {scorer.name}: {len(failing)} checks fail on "
                    f"{_names(_failing_slices(summary, scorer.name))}.",
                    recommend=scorer.backend != "route")


def advise(summary: RunRecord, scorer: ScorerRecord, plan: Plan | None = None) -> Decision:
    name = scorer.name
    verdict = candidate_verdict(summary, name)
    if verdict == "pass" and scorer.backend == "route":
        default, fallback, share, elsewhere = _route(summary, scorer)
        if not fallback:
            where = (f"on all other traffic{_and_elsewhere(elsewhere)}" if elsewhere
                     else "on all traffic")
            return Decision(name, "ship", f"Ship {name}: {default} {where}.")
        return Decision(name, "ship with fallback",
                        f"Ship {name}: {default} with fallback to {summary.reference.name} "
                        f"on {_names(fallback)} ({share:.1%} of traffic)"
                        f"{_and_elsewhere(elsewhere)}; the routed candidate passes the gate.")
    if verdict == "pass":
        return Decision(name, "ship", f"Ship {name}: none of its "
                                      f"{len(checks_of(summary, name))} checks fails.")
    if verdict == "fail" and scorer.backend != "route":
        routes = [s for s in summary.candidates if s.backend == "route"
                  and _route(summary, s)[0] == name
                  and candidate_verdict(summary, s.name) == "pass"]
        if routes:
            _, fallback, share, elsewhere = _route(summary, routes[0])
            return _with_fallback(summary, name, fallback, share,
                                  f"as the routed candidate {routes[0].name} that passes",
                                  elsewhere)
        if plan is not None and plan.candidate == name:
            return _with_fallback(summary, name, plan.fallback, plan.share,
                                  f"the plan in {plan.file} that validator recommend chose "
                                  f"on one half of the rows and confirmed on the other",
                                  plan.elsewhere)
    return _blocked(summary, scorer, verdict)


def decisions(summary: RunRecord, plan: Plan | None = None) -> list[Decision]:
    return [advise(summary, s, plan) for s in summary.candidates]


def strip(summary: RunRecord) -> list[dict]:
    """Per candidate, per slice: the worst verdict of its checks and how many fail."""
    rows = []
    for scorer in summary.candidates:
        by_slice: dict[str, list[CheckRecord]] = {}
        for c in checks_of(summary, scorer.name):
            by_slice.setdefault(c.slice, []).append(c)
        cells = []
        for s in summary.slices:
            checks = by_slice.get(s.name, [])
            fails = sum(c.verdict == "fail" for c in checks)
            open_ = sum(c.verdict == "inconclusive" for c in checks)
            cells.append({"slice": s.name, "verdict": worst(c.verdict for c in checks),
                          "fails": fails, "checks": len(checks), "title": f"{scorer.name} on {s.name} ({s.rows} rows)"
                          f": {fails} of {len(checks)} checks fail, {open_} inconclusive"})
        rows.append({"candidate": scorer.name, "cells": cells})
    return rows


def headline(summary: RunRecord, majority: dict[tuple[str, str], float]) -> list[dict]:
    """Overall agreement (slice ``all``, dimensions pooled) with its CI and the
    majority-rating baseline, and each scorer's speed, memory, capacity and cost."""
    cost = summary.cost
    deployed = {d.candidate: d.monthly_cost for d in cost.deployments} if cost else {}
    rows = []
    for scorer in summary.scorers:
        overall = next((c for c in checks_of(summary, scorer.name)
                        if c.slice == "all" and c.dimension == "_all"), None)
        monthly = deployed.get(scorer.name, cost.monthly_cost.get(scorer.name) if cost
                               else None)
        rows.append({"scorer": scorer, "check": overall,
                     "value": (overall.candidate_value if overall else
                               next((m.value for m in summary.metrics
                                     if m.scorer == scorer.name and m.slice == "all"
                                     and m.dimension == "_all"
                                     and m.metric == summary.gate.metric), None)),
                     "majority": majority.get(("all", "_all")),
                     "memory": getattr(scorer, "memory_bytes", None),  # isolated (issue 15)
                     "capacity": getattr(scorer, "capacity_rps", None),
                     "monthly_cost": monthly})
    return rows
