"""``validator recommend``: the cheapest routed deployment that passes the run's gate.

From a finished run (summary.json and predictions.parquet; nothing is re-scored), for
each candidate that is not itself routed: which slices must fall back to the reference,
or go to another candidate that does better there, so that no check of the gate fails,
with the least fallback traffic.

- The gate rows are split in two halves by a stable hash (sha256) of their id. The plan
  is **chosen** on the selection half and **confirmed** on the other: the routed
  candidate's checks are recomputed there with the gate's own functions
  (``metrics.compute_metrics``, ``gate.evaluate_gate``) and settings. A plan that fails
  confirmation is reported as failed, never as a pass.
- The plan is chosen with each check judged at the gate's confidence but **without the
  multiple-comparison correction**: a slice that only looks degraded on half the rows
  is routed rather than left to fail confirmation (routing too much costs money; too
  little fails the gate). The confirmation applies the gate's full rules.
- The search is **greedy**: starting from no route, add the route (a slice to the
  reference or to another candidate) that removes the most failing checks per unit of
  fallback traffic it adds (a route to another candidate adds none), else the one that
  brings the failing checks' lower bounds closest to their max_drop, until none fails;
  then drop every route whose removal keeps it passing (costliest first). It is not
  guaranteed minimal. Fallbacks to the reference come first in the routing file.
- Slices with fewer than ``gate.min_rows`` rows cannot be decided; they are listed,
  and with ``route_small`` routed to the reference as a precaution.
- Shares are traffic shares: each gate row weighs its ``traffic_weight`` (the
  production mix when the run declared one), else equally.
- Overrides that name a candidate are not applied: the routed candidate is new.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from validator.bounded_yaml import load_yaml_text
from validator.config import parse_config
from validator.speed.mix import deployment_cost, traffic
from validator.errors import ValidatorError
from validator.judge.gate import FAIL, INCONCLUSIVE, PASS, evaluate_gate, gated_metrics
from validator.metrics import compute_metrics
from validator.record.ownership import check_replaceable
from validator.record.run_dir import RunDir
from validator.record.write import write_text
from validator.routing import Router, Rule
from validator.data.slices.dsl import parse_condition

ROUTED_SUFFIX = "-with-fallback"


@dataclass(frozen=True)
class Route:
    slice: str
    to: str


@dataclass
class Option:
    candidate: str
    routes: list[Route]               # in serving order; the default is the candidate
    share: float | None               # fallback traffic share on all gate rows
    selection: str                    # pass | fail (no plan within the limit)
    confirmation: str = "not run"     # pass | fail | not run
    confirmation_counts: dict = field(default_factory=dict)
    failing: list[str] = field(default_factory=list)   # failing checks on confirmation
    cost: dict | None = None

    traffic: dict[str, float] = field(default_factory=dict)   # scorer -> share, all rows

    @property
    def confirmed(self) -> bool:
        return self.confirmation == PASS

    def describe(self) -> str:
        return ", ".join(f"{r.slice} -> {r.to}" for r in self.routes) or "(none)"


def load_run(run_dir: Path) -> RunDir:
    """The run, read and verified, with every column the search reads."""
    run = RunDir.read(run_dir)
    run.require_columns([f"human:{d}" for d in run.dimensions]
                        + [f"slice:{s}" for s in run.slices])
    return run


def selection_half(ids: pd.Series) -> np.ndarray:
    """True for the rows that choose the plan; a stable hash of the id decides."""
    return np.array([hashlib.sha256(str(i).encode("utf-8")).digest()[0] % 2 == 0
                     for i in ids])


def gate_config(run: RunDir, names: list[str], selecting: bool = False):
    """The run's gate as a columns-backend config over the given candidate names; while
    selecting, without its multiple-comparison correction."""
    gate = run.gate_settings()
    if selecting:
        gate["correction"] = "none"
    gate["overrides"] = [o for o in gate.get("overrides", []) if o.get("candidate") is None]
    raw = {"sample": {"path": str(run.sample_path)},
           "rubric": {"scale": list(run.scale),
                      "dimensions": {d: d for d in run.dimensions}},
           "slices": [],
           "reference": {"name": run.reference, "backend": "columns", "columns": "{dimension}"},
           "candidates": [{"name": n, "backend": "columns", "columns": "{dimension}"}
                          for n in names],
           "gate": gate, "seed": run.seed}
    return parse_config(raw, run.record.config.source, Path("."))


def ordered(run: RunDir, routes: list[Route]) -> list[Route]:
    """Rules in serving order: fallbacks to the reference first (they win), then routes
    to another candidate, each in the order chosen."""
    return ([r for r in routes if r.to == run.reference]
            + [r for r in routes if r.to != run.reference])


def routed_choice(run: RunDir, candidate: str, routes: list[Route]) -> np.ndarray:
    """The scorer that answers each gate row; the first matching rule wins."""
    choice = np.full(len(run.table), candidate, dtype=object)
    for route in reversed(ordered(run, routes)):
        choice[run.mask(route.slice)] = route.to
    return choice


def routed_scores(run: RunDir, candidate: str, routes: list[Route]) -> np.ndarray:
    choice = routed_choice(run, candidate, routes)
    scores = run.scores(candidate).copy()
    for scorer in set(choice) - {candidate}:
        rows = choice == scorer
        scores[rows] = run.scores(scorer)[rows]
    return scores


def shares(run: RunDir, candidate: str, routes: list[Route], rows: np.ndarray) -> dict[str, float]:
    """The traffic share each scorer answers on ``rows``."""
    return traffic(routed_choice(run, candidate, routes)[rows], run.weights[rows])


def fallback_share(run: RunDir, candidate: str, routes: list[Route], rows: np.ndarray) -> float:
    return shares(run, candidate, routes, rows).get(run.reference, 0.0)


def plan_cost(run: RunDir, candidate: str, routes: list[Route], rows: np.ndarray) -> float:
    """What the search minimises: the fallback share, plus a tie-breaking millionth of
    the share moved to another candidate (so a move that removes no failure is never
    free)."""
    split = shares(run, candidate, routes, rows)
    return split.get(run.reference, 0.0) + 1e-6 * sum(
        v for k, v in split.items() if k not in (candidate, run.reference))


def evaluate(run: RunDir, rows: np.ndarray, plans: dict[str, np.ndarray],
             selecting: bool = False) -> dict[str, list]:
    """The gate's checks of each plan (name -> predictions) on the given rows; while
    selecting, each check at the gate's confidence without the multiple-comparison
    correction."""
    config = gate_config(run, list(plans), selecting)
    human = run.table.loc[rows, [f"human:{d}" for d in run.dimensions]]
    human.columns = run.dimensions
    masks = run.table.loc[rows, [f"slice:{s}" for s in run.slices]]
    masks.columns = list(run.slices)
    scale = run.scale
    only = gated_metrics(config.gate)  # the checks read the gate's metric and its guard's
    reference = run.scores(run.reference)[rows]
    key = rows.tobytes()
    if key not in run.memo:  # the reference's metrics do not change per plan
        run.memo[key] = compute_metrics(human, {run.reference: reference}, masks, scale,
                                        only=only)
    plan_scores = {name: values[rows] for name, values in plans.items()}
    metrics = pd.concat([run.memo[key],
                         compute_metrics(human, plan_scores, masks, scale, only=only)],
                        ignore_index=True)
    scores = {run.reference: reference, **plan_scores}
    checks = evaluate_gate(metrics, human, scores, masks, config).checks
    return {name: [c for c in checks if c.candidate == name] for name in plans}


def failures(checks) -> int:
    return sum(c.verdict == FAIL for c in checks)


def shortfall(checks) -> tuple[int, float]:
    """Failing checks, then how far past its max_drop their lower bounds lie in all."""
    failing = [c for c in checks if c.verdict == FAIL]
    return len(failing), float(sum(max(c.ci_low - c.max_drop, 0.0) for c in failing))


def _trials(run: RunDir, candidate: str, plans: dict[str, list[Route]],
            rows) -> dict[str, tuple[int, float]]:
    """The shortfall of each trial plan on the selection rows, in one gate evaluation
    (without a correction, checks of different plans do not interact)."""
    scores = {name: routed_scores(run, candidate, routes) for name, routes in plans.items()}
    return {n: shortfall(c) for n, c in evaluate(run, rows, scores, selecting=True).items()}


def moves(run: RunDir, candidate: str, plan: list[Route]) -> list[Route]:
    """Every route the plan lacks: a slice not yet routed, to the reference or another
    candidate; a slice routed to another candidate, to the reference instead."""
    targets = [run.reference, *(c for c in run.model_candidates if c != candidate)]
    return [Route(s, to) for s in run.slices if s != "all" for to in targets
            if Route(s, to) not in plan and Route(s, run.reference) not in plan]


def with_route(plan: list[Route], route: Route) -> list[Route]:
    """The plan with ``route`` added, replacing the slice's earlier route."""
    return [r for r in plan if r.slice != route.slice] + [route]


def greedy_plan(run: RunDir, candidate: str, rows: np.ndarray, start: list[Route],
                max_share: float) -> list[Route] | None:
    """Routes under which no check fails on ``rows``; None past ``max_share``."""
    plan = list(start)
    now = _trials(run, candidate, {"plan": plan}, rows)["plan"]
    while now[0]:
        trials = {f"t{i}": with_route(plan, move)
                  for i, move in enumerate(moves(run, candidate, plan))}
        result = _trials(run, candidate, trials, rows)
        base = plan_cost(run, candidate, plan, rows)

        def value(key):  # failures removed per cost, else shortfall removed per cost
            cost = max(plan_cost(run, candidate, trials[key], rows) - base, 1e-12)
            fewer, closer = now[0] - result[key][0], now[1] - result[key][1]
            return (fewer / cost, closer / cost)
        best = max(trials, key=value, default=None)
        if best is None or value(best) <= (0, 0):
            return None
        plan, now = trials[best], result[best]
        if fallback_share(run, candidate, plan, rows) > max_share:
            return None
    return prune(run, candidate, rows, plan, start)


def prune(run: RunDir, candidate: str, rows, plan: list[Route], keep: list[Route]) -> list[Route]:
    """Drop each chosen route (costliest first) whose removal keeps every check passing."""
    order = sorted((r for r in plan if r not in keep),
                   key=lambda r: -plan_cost(run, candidate, [r], rows))
    for route in order:
        trial = [r for r in plan if r != route]
        if _trials(run, candidate, {"plan": trial}, rows)["plan"][0] == 0:
            plan = trial
    return plan


def small_slices(run: RunDir) -> list[str]:
    return [s for s, record in run.slices.items() if 0 < record.rows < run.gate.min_rows]


def plan_for(run: RunDir, candidate: str, max_share: float, route_small: bool,
             select: np.ndarray) -> Option:
    start = [Route(s, run.reference) for s in small_slices(run)] if route_small else []
    plan = greedy_plan(run, candidate, select, start, max_share)
    if plan is None:
        return Option(candidate, [], None, FAIL)
    plan = ordered(run, plan)
    everything = np.ones(len(run.table), dtype=bool)
    option = Option(candidate, plan, fallback_share(run, candidate, plan, everything), PASS,
                    traffic=shares(run, candidate, plan, everything))
    name = candidate + ROUTED_SUFFIX
    checks = evaluate(run, ~select, {name: routed_scores(run, candidate, plan)})[name]
    option.confirmation = FAIL if failures(checks) else PASS
    option.confirmation_counts = {v: sum(c.verdict == v for c in checks)
                                  for v in (FAIL, INCONCLUSIVE, PASS)}
    option.failing = [f"{c.slice}/{c.dimension}" for c in checks if c.verdict == FAIL]
    cost = run.record.cost
    if cost:
        option.cost = deployment_cost(name, option.traffic,
                                      {s.name: s.model_dump() for s in run.record.scorers},
                                      cost.model_dump(), run.reference)
    return option


def router(run: RunDir, option: Option) -> Router:
    def rule(route: Route) -> Rule:
        where = load_yaml_text(run.slices[route.slice].where,
                               f"summary.json: slice {route.slice}", ValidatorError)
        return Rule(route.to, route.slice, parse_condition(where, f"slice {route.slice}"),
                    where)
    return Router(option.candidate + ROUTED_SUFFIX,
                  (*map(rule, option.routes), Rule(option.candidate)),
                  run.record.sample.text_column)


def best_option(options: list[Option]) -> Option | None:
    confirmed = [o for o in options if o.confirmed]
    if not confirmed:
        return None
    return min(confirmed, key=lambda o: (o.cost["monthly_cost"] if o.cost else 0, o.share))


def recommend(run_dir: Path, max_share: float,
              route_small: bool = False) -> tuple[RunDir, list[Option], Option | None]:
    if not 0 < max_share <= 1:
        raise ValidatorError(f"--max-fallback-share: must be in (0, 1], got {max_share}")
    run = load_run(run_dir)
    if not run.model_candidates:
        raise ValidatorError(f"{run_dir / 'summary.json'}: the run has no model candidate")
    select = selection_half(run.table["id"])
    options = [plan_for(run, c, max_share, route_small, select) for c in run.model_candidates]
    return run, options, best_option(options)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def options_table(options: list[Option], max_share: float) -> str:
    """Markdown: one row per candidate, with both halves' verdicts and the cost."""
    lines = ["| candidate | routes (slice -> scorer) | fallback share | selection half | "
             "confirmation half | monthly cost |", "|---|---|---|---|---|---|"]
    for o in options:
        chosen = (PASS if o.selection == PASS
                  else f"no plan within {max_share:.0%} fallback")
        counts = o.confirmation_counts
        confirmed = (o.confirmation if not counts else
                     f"{o.confirmation} ({counts[FAIL]} failed, {counts[INCONCLUSIVE]} "
                     f"inconclusive, {counts[PASS]} passed)")
        cost = "-" if o.cost is None else (f"{o.cost['monthly_cost']:,.0f} (saves "
                                           f"{o.cost['saving']:,.0f})")
        lines.append(f"| {o.candidate} | {o.describe()} | "
                     f"{_share(o.share)} | {chosen} | {confirmed} | {cost} |")
    return "\n".join(lines) + "\n"


def write_plan(out: Path, run: RunDir, options: list[Option], best: Option | None,
               max_share: float) -> list[Path]:
    """routing.yaml (the best confirmed plan), its gate-config snippet, the options table."""
    table = out.with_name(out.stem + ".options.md")
    options_json = out.with_name(out.stem + ".options.json")
    snippet = out.with_name(out.stem + ".candidate.yaml")
    check_replaceable([out, table, options_json, snippet])
    out.parent.mkdir(parents=True, exist_ok=True)
    note = ("Plans chosen on one half of the gate rows (sha256 of the id) by a greedy "
            "search, confirmed on the other half.\n\n")
    write_text(table, note + options_table(options, max_share))
    write_text(options_json,  # for the report (outputs.after_sections)
               json.dumps([asdict(o) for o in options], indent=2))
    if best is None:
        return [table]
    plan = router(run, best)
    write_text(out, plan.dump())
    route = [{"slice": r.slice, "to": r.to} for r in plan.rules[:-1]] + \
        [{"default": plan.default}]
    write_text(snippet,
        f"# Add to `candidates:` of the gate config to gate this deployment "
        f"(validator recommend; fallback on {_share(best.share)} of traffic).\n"
        + yaml.safe_dump({"candidates": [{"name": plan.name, "route": route}]},
                         sort_keys=False, default_flow_style=None))
    return [out, snippet, table]
