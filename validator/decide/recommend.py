"""``validator recommend``: the cheapest routed deployment that passes the run's gate.

From a finished run (summary.json and predictions.parquet; nothing is re-scored), for
each candidate that is not itself routed: which slices must fall back to the reference
so that no check of the gate fails, with the least fallback traffic.

- The gate rows are split in two halves by a stable hash (sha256) of their id. The plan
  is **chosen** on the selection half and **confirmed** on the other: the routed
  candidate's checks are recomputed there with the gate's own functions
  (``metrics.compute_metrics``, ``gate.evaluate_gate``) and settings. A plan that fails
  confirmation is reported as failed, never as a pass.
- The search is **greedy**: starting from no fallback, add the slice that removes the
  most failing checks per unit of traffic it moves, until none fails; then drop every
  slice whose removal keeps it passing (largest first). It is not guaranteed minimal.
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

from validator.config import GateConfig, parse_config
from validator.decide.mix import deployment_cost
from validator.decide import read_run_files
from validator.errors import ValidatorError
from validator.gate import FAIL, INCONCLUSIVE, PASS, evaluate_gate
from validator.metrics import compute_metrics
from validator.outputs import write_text
from validator.routing import Router, Rule
from validator.slices.dsl import parse_condition

ROUTED_SUFFIX = "-with-fallback"


@dataclass
class Run:
    summary: dict
    table: pd.DataFrame
    dimensions: list[str]
    reference: str
    candidates: list[str]      # not routed
    slices: dict[str, dict]    # name -> the summary's slice record
    weights: np.ndarray        # traffic weight per gate row, summing to 1
    reference_metrics: dict = field(default_factory=dict)  # rows -> metrics frame

    def scores(self, scorer: str) -> np.ndarray:
        return self.table[[f"{scorer}:{d}" for d in self.dimensions]].to_numpy(dtype=float)

    def mask(self, slice_name: str) -> np.ndarray:
        return self.table[f"slice:{slice_name}"].to_numpy(dtype=bool)


@dataclass
class Option:
    candidate: str
    fallback: list[str]
    share: float | None               # fallback traffic share on all gate rows
    selection: str                    # pass | fail (no plan within the limit)
    confirmation: str = "not run"     # pass | fail | not run
    confirmation_counts: dict = field(default_factory=dict)
    failing: list[str] = field(default_factory=list)   # failing checks on confirmation
    cost: dict | None = None

    @property
    def confirmed(self) -> bool:
        return self.confirmation == PASS


def load_run(run_dir: Path) -> Run:
    summary, table = read_run_files(run_dir)
    reference = next(s["name"] for s in summary["scorers"] if s["role"] == "reference")
    candidates = [s["name"] for s in summary["scorers"]
                  if s["role"] == "candidate" and s["backend"] != "route"]
    dimensions = summary["rubric"]["dimensions"]
    slices = {s["name"]: s for s in summary["slices"]}
    needed = [f"{n}:{d}" for n in [reference, *candidates] for d in dimensions] + \
        [f"human:{d}" for d in dimensions] + [f"slice:{s}" for s in slices]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValidatorError(f"{run_dir / 'predictions.parquet'}: missing column "
                             f"{missing[0]!r}")
    weights = (table["traffic_weight"].to_numpy(dtype=float) if "traffic_weight" in table
               else np.full(len(table), 1.0 / len(table)))
    return Run(summary, table, dimensions, reference, candidates, slices,
               weights / weights.sum())


def selection_half(ids: pd.Series) -> np.ndarray:
    """True for the rows that choose the plan; a stable hash of the id decides."""
    return np.array([hashlib.sha256(str(i).encode("utf-8")).digest()[0] % 2 == 0
                     for i in ids])


def gate_config(run: Run, names: list[str]):
    """The run's gate as a columns-backend config over the given candidate names."""
    gate = {k: v for k, v in run.summary["gate"].items() if k in GateConfig.model_fields}
    gate["overrides"] = [o for o in gate.get("overrides", []) if o.get("candidate") is None]
    raw = {"sample": {"path": run.summary["sample"]["path"]},
           "rubric": {"scale": run.summary["rubric"]["scale"],
                      "dimensions": {d: d for d in run.dimensions}},
           "slices": [],
           "reference": {"name": run.reference, "backend": "columns", "columns": "{dimension}"},
           "candidates": [{"name": n, "backend": "columns", "columns": "{dimension}"}
                          for n in names],
           "gate": gate, "seed": run.summary["config"]["seed"]}
    return parse_config(raw, str(run.summary["config"]["source"]), Path("."))


def routed_scores(run: Run, candidate: str, fallback: list[str]) -> np.ndarray:
    rows = np.zeros(len(run.table), dtype=bool)
    for name in fallback:
        rows |= run.mask(name)
    return np.where(rows[:, None], run.scores(run.reference), run.scores(candidate))


def fallback_share(run: Run, fallback: list[str], rows: np.ndarray) -> float:
    routed = np.zeros(len(run.table), dtype=bool)
    for name in fallback:
        routed |= run.mask(name)
    return float(run.weights[rows & routed].sum() / run.weights[rows].sum())


def evaluate(run: Run, rows: np.ndarray, plans: dict[str, np.ndarray]) -> dict[str, list]:
    """The gate's checks of each plan (name -> predictions) on the given rows."""
    config = gate_config(run, list(plans))
    human = run.table.loc[rows, [f"human:{d}" for d in run.dimensions]]
    human.columns = run.dimensions
    masks = run.table.loc[rows, [f"slice:{s}" for s in run.slices]]
    masks.columns = list(run.slices)
    scale = tuple(run.summary["rubric"]["scale"])
    reference = run.scores(run.reference)[rows]
    key = rows.tobytes()
    if key not in run.reference_metrics:  # the reference's metrics do not change per plan
        run.reference_metrics[key] = compute_metrics(human, {run.reference: reference},
                                                     masks, scale)
    plan_scores = {name: values[rows] for name, values in plans.items()}
    metrics = pd.concat([run.reference_metrics[key],
                         compute_metrics(human, plan_scores, masks, scale)], ignore_index=True)
    scores = {run.reference: reference, **plan_scores}
    checks = evaluate_gate(metrics, human, scores, masks, config).checks
    return {name: [c for c in checks if c.candidate == name] for name in plans}


def failures(checks) -> int:
    return sum(c.verdict == FAIL for c in checks)


def _trials(run: Run, candidate: str, plans: dict[str, list[str]], rows) -> dict[str, int]:
    """Failing checks of each trial plan; one gate evaluation for all of them unless a
    multiple-comparison correction makes checks of different plans interact."""
    scores = {name: routed_scores(run, candidate, fb) for name, fb in plans.items()}
    if run.summary["gate"].get("correction", "none") == "none":
        return {n: failures(c) for n, c in evaluate(run, rows, scores).items()}
    return {n: failures(evaluate(run, rows, {n: s})[n]) for n, s in scores.items()}


def greedy_plan(run: Run, candidate: str, rows: np.ndarray, start: list[str],
                max_share: float) -> list[str] | None:
    """Fallback slices under which no check fails on ``rows``; None past ``max_share``."""
    plan = list(start)
    fails = _trials(run, candidate, {"plan": plan}, rows)["plan"]
    pool = [s for s in run.slices if s != "all" and s not in plan]
    while fails:
        trials = {f"t{i}": [*plan, s] for i, s in enumerate(pool)}
        if not trials:
            return None
        result = _trials(run, candidate, trials, rows)
        base = fallback_share(run, plan, rows)

        def value(key):
            gain = fails - result[key]
            cost = max(fallback_share(run, trials[key], rows) - base, 1e-9)
            return (gain / cost if gain > 0 else -cost, -result[key])
        best = max(trials, key=value)
        if result[best] >= fails and fallback_share(run, trials[best], rows) <= base:
            return None
        plan, fails = trials[best], result[best]
        pool.remove(plan[-1])
        if fallback_share(run, plan, rows) > max_share:
            return None
    return prune(run, candidate, rows, plan, start)


def prune(run: Run, candidate: str, rows, plan: list[str], keep: list[str]) -> list[str]:
    """Drop each chosen slice (largest share first) whose removal keeps every check passing."""
    order = sorted((s for s in plan if s not in keep),
                   key=lambda s: -fallback_share(run, [s], rows))
    for name in order:
        trial = [s for s in plan if s != name]
        if _trials(run, candidate, {"plan": trial}, rows)["plan"] == 0:
            plan = trial
    return plan


def small_slices(run: Run) -> list[str]:
    min_rows = run.summary["gate"]["min_rows"]
    return [s for s, record in run.slices.items() if 0 < record["rows"] < min_rows]


def plan_for(run: Run, candidate: str, max_share: float, route_small: bool,
             select: np.ndarray) -> Option:
    start = small_slices(run) if route_small else []
    plan = greedy_plan(run, candidate, select, start, max_share)
    if plan is None:
        return Option(candidate, [], None, FAIL)
    everything = np.ones(len(run.table), dtype=bool)
    option = Option(candidate, plan, fallback_share(run, plan, everything), PASS)
    name = candidate + ROUTED_SUFFIX
    checks = evaluate(run, ~select, {name: routed_scores(run, candidate, plan)})[name]
    option.confirmation = FAIL if failures(checks) else PASS
    option.confirmation_counts = {v: sum(c.verdict == v for c in checks)
                                  for v in (FAIL, INCONCLUSIVE, PASS)}
    option.failing = [f"{c.slice}/{c.dimension}" for c in checks if c.verdict == FAIL]
    cost = run.summary.get("cost")
    if cost:
        shares = {run.reference: option.share, candidate: 1 - option.share}
        option.cost = deployment_cost(name, {k: v for k, v in shares.items() if v > 0},
                                      {s["name"]: s for s in run.summary["scorers"]},
                                      cost, run.reference)
    return option


def router(run: Run, option: Option) -> Router:
    rules = [Rule(run.reference, s, parse_condition(yaml.safe_load(run.slices[s]["where"]),
                                                     f"slice {s}"),
                  yaml.safe_load(run.slices[s]["where"])) for s in option.fallback]
    return Router(option.candidate + ROUTED_SUFFIX, (*rules, Rule(option.candidate)),
                  run.summary["sample"].get("text_column", "text"))


def best_option(options: list[Option]) -> Option | None:
    confirmed = [o for o in options if o.confirmed]
    if not confirmed:
        return None
    return min(confirmed, key=lambda o: (o.cost["monthly_cost"] if o.cost else 0, o.share))


def recommend(run_dir: Path, max_share: float,
              route_small: bool = False) -> tuple[Run, list[Option], Option | None]:
    if not 0 < max_share <= 1:
        raise ValidatorError(f"--max-fallback-share: must be in (0, 1], got {max_share}")
    run = load_run(run_dir)
    if not run.candidates:
        raise ValidatorError(f"{run_dir / 'summary.json'}: the run has no model candidate")
    select = selection_half(run.table["id"])
    options = [plan_for(run, c, max_share, route_small, select) for c in run.candidates]
    return run, options, best_option(options)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def options_table(options: list[Option], max_share: float) -> str:
    """Markdown: one row per candidate, with both halves' verdicts and the cost."""
    lines = ["| candidate | fallback slices | fallback share | selection half | "
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
        lines.append(f"| {o.candidate} | {', '.join(o.fallback) or '(none)'} | "
                     f"{_share(o.share)} | {chosen} | {confirmed} | {cost} |")
    return "\n".join(lines) + "\n"


def write_plan(out: Path, run: Run, options: list[Option], best: Option | None,
               max_share: float) -> list[Path]:
    """routing.yaml (the best confirmed plan), its gate-config snippet, the options table."""
    out.parent.mkdir(parents=True, exist_ok=True)
    table = out.with_name(out.stem + ".options.md")
    note = ("Plans chosen on one half of the gate rows (sha256 of the id) by a greedy "
            "search, confirmed on the other half.\n\n")
    write_text(table, note + options_table(options, max_share))
    write_text(out.with_name(out.stem + ".options.json"),  # for the report (decision_view)
               json.dumps([asdict(o) for o in options], indent=2))
    if best is None:
        return [table]
    plan = router(run, best)
    write_text(out, plan.dump())
    snippet = out.with_name(out.stem + ".candidate.yaml")
    route = [{"slice": r.slice, "to": r.to} for r in plan.rules[:-1]] + \
        [{"default": plan.default}]
    write_text(snippet,
        f"# Add to `candidates:` of the gate config to gate this deployment "
        f"(validator recommend; fallback on {_share(best.share)} of traffic).\n"
        + yaml.safe_dump({"candidates": [{"name": plan.name, "route": route}]},
                         sort_keys=False, default_flow_style=None))
    return [out, snippet, table]
