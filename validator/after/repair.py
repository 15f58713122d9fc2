"""``validator repair``: the mixed-precision candidate that passes the gate, searched
with the gate itself as the objective.

From a finished run, for one INT8 recipe candidate:

1. ``validator diagnose`` (on the **search** half of the gate rows, hash of the id as
   in ``validator recommend``) ranks the layers or blocks by how much keeping each one
   alone in fp32 moves the failing slices' predictions toward the reference.
2. **Greedy**: keep the next-ranked unit in fp32 as well (the recipe's ``exclude``),
   rebuild, score every gate row (through the prediction cache), and re-gate on the
   search half with the gate's own functions and settings (``recommend.evaluate``),
   each check at the gate's confidence but without the multiple-comparison correction
   (as ``validator recommend`` chooses: a slice that only looks degraded on half the
   rows is repaired rather than left to fail confirmation), until no check fails there
   or the budget is spent: ``units`` kept, or a step whose size on disk or batch-1 p50
   latency would exceed ``size_mb`` / ``latency_ms`` (that step is recorded, not
   scored, and the search stops). Each step records the layers kept, size on disk,
   batch-1 p50 latency and the failing checks left.
3. The step with the fewest failing checks on the search half (then the fewest units),
   among the steps within the budget, is **confirmed** on the other half. Only a
   confirmation without failing checks is a pass; the original candidate's checks on
   that half are shown beside it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from validator.after.diagnose import diagnose, finite
from validator.after.rebuild import Workbench
from validator.after.recommend import evaluate, failures, selection_half
from validator.judge.gate import FAIL, INCONCLUSIVE, PASS
from validator.record.write import write_text
from validator.speed.profile import inprocess_latency_p50

REPAIRED_SUFFIX = "-repaired"


@dataclass(frozen=True)
class Budget:
    units: int                       # most units kept in fp32
    size_mb: float | None = None     # most size on disk of a step
    latency_ms: float | None = None  # most batch-1 p50 latency of a step (in process)

    def exceeded(self, size_bytes: int | None, latency_ms: float | None) -> str | None:
        """Why a step's size or latency is over the budget (None: within it)."""
        if self.size_mb is not None and size_bytes is not None \
                and size_bytes / 1e6 > self.size_mb:
            return f"size {size_bytes / 1e6:.1f} MB > {self.size_mb:g} MB"
        if self.latency_ms is not None and latency_ms is not None \
                and latency_ms > self.latency_ms:
            return f"p50 latency {latency_ms:.1f} ms > {self.latency_ms:g} ms"
        return None


@dataclass
class Step:
    step: int
    added: str | None              # the unit kept in fp32 at this step
    exclude: list[str]             # every exclude entry so far
    layers_kept: int
    size_bytes: int | None
    latency_ms_p50: float | None
    failing_search: int | None     # None: over the budget, not scored
    failing_checks: list[str] = field(default_factory=list)
    over_budget: str | None = None


def ranking(record: dict) -> list[dict]:
    """Measured units whose fp32 copy moved the target slices toward the reference on
    the search half, most first (summed over the slices)."""
    total: dict[str, dict] = {}
    for entry in record["layers"]:
        if entry["measured"]:
            unit = total.setdefault(entry["layer"], {"name": entry["layer"],
                                                     "exclude": entry["exclude"],
                                                     "layers": entry["layers"], "gain": 0.0})
            unit["gain"] += entry["distance_change_search"]
    return sorted((u for u in total.values() if u["gain"] < 0), key=lambda u: u["gain"])


def counts(checks) -> dict[str, int]:
    return {v: sum(c.verdict == v for c in checks) for v in (FAIL, INCONCLUSIVE, PASS)}


def latency_texts(bench: Workbench) -> list[str]:
    """A speed-probe draw of the run's rows (production mix, seed; without a mix, one
    uniform stratum, as the slices are not re-evaluated here), for the latency."""
    from validator.speed.profile import probe_texts

    sample, config = bench.sample, bench.config
    return probe_texts(sample.frame, sample.texts, config.sample.production_mix,
                       config.seed)[0]


def _step(bench: Workbench, index: int, added: str | None, exclude: list[str],
          search: np.ndarray, budget: Budget,
          probe: list[str]) -> tuple[Step, np.ndarray | None]:
    name = bench.spec.name + REPAIRED_SUFFIX
    scorer = bench.variant(exclude, name)
    latency, size = inprocess_latency_p50(scorer, probe), scorer.size_bytes()
    kept = (scorer.recipe or {}).get("kept_fp32_count", 0)
    over = budget.exceeded(size, latency) if index else None
    if over:
        return Step(index, added, exclude, kept, size, latency, None, over_budget=over), None
    everything = np.ones(len(bench.run.table), dtype=bool)
    values = bench.predict(scorer, everything)
    checks = evaluate(bench.run, search, {name: values}, selecting=True)[name]
    failing = [f"{c.slice}/{c.dimension}" for c in checks if c.verdict == FAIL]
    return Step(index, added, exclude, kept, size, latency, failures(checks), failing), values


def repair(bench: Workbench, budget: Budget, top: int, probe_limit: int, by: str) -> dict:
    run, candidate = bench.run, bench.spec.name
    search = selection_half(run.table["id"])
    diagnosis = diagnose(bench, None, top, probe_limit, by)
    order = ranking(diagnosis)
    probe = latency_texts(bench)
    step, values = _step(bench, 0, None, [], search, budget, probe)
    steps, predictions = [step], [values]
    exclude: list[str] = []
    for index, unit in enumerate(order[:budget.units], start=1):
        if steps[-1].failing_search == 0:
            break
        exclude = [*exclude, *unit["exclude"]]
        step, values = _step(bench, index, unit["name"], exclude, search, budget, probe)
        steps.append(step)
        predictions.append(values)
        if step.over_budget:
            break
    scored = [i for i, s in enumerate(steps) if s.failing_search is not None]
    best = min(scored, key=lambda i: (steps[i].failing_search, steps[i].layers_kept))
    name = candidate + REPAIRED_SUFFIX
    confirmed = {**evaluate(run, ~search, {name: predictions[best]}),  # apart: a
                 **evaluate(run, ~search, {candidate: run.scores(candidate)})}  # correction
    best_counts, original_counts = counts(confirmed[name]), counts(confirmed[candidate])
    verdict = PASS if best > 0 and best_counts[FAIL] == 0 else FAIL
    return {"candidate": candidate, "recipe": bench.recipe, "by": by,
            "budget": asdict(budget),
            "method": "greedy: keep the next unit of diagnose's ranking (search half) in "
                      "fp32, rebuild, re-gate on the search half; the best step within "
                      "the budget is confirmed on the other half (sha256 of the id)",
            "tool": diagnosis["tool"], "ranking": order,
            "steps": [asdict(s) for s in steps], "best_step": best,
            "exclude": steps[best].exclude,
            "reference": _speed(run, run.reference), "original": _speed(run, candidate),
            "confirmation": {"verdict": verdict, "repaired": best_counts,
                             "original": original_counts,
                             "failing": [f"{c.slice}/{c.dimension}"
                                         for c in confirmed[name] if c.verdict == FAIL]},
            "config": candidate_config(bench, steps[best].exclude)}


def _speed(run, scorer: str) -> dict:
    record = next(s for s in run.record.scorers if s.name == scorer)
    return {"size_bytes": record.size_bytes, "latency_ms_p50": record.latency_ms_p50}


def candidate_config(bench: Workbench, exclude: list[str]) -> dict:
    """The repaired candidate as a ``candidates:`` entry of the gate config."""
    spec = bench.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    spec.update(name=bench.spec.name + REPAIRED_SUFFIX, exclude=exclude or None)
    return {k: v for k, v in spec.items() if v is not None}


def _mb(value) -> str:
    return "-" if value is None else f"{value / 1e6:.1f} MB"


def _ms(value) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _failing(step: dict) -> str:
    over = step.get("over_budget")
    return str(step["failing_search"]) if over is None else f"not scored: over budget ({over})"


def step_table(record: dict) -> str:
    lines = ["| step | kept in fp32 (added) | layers kept | size | p50 latency | failing "
             "checks (search half) |", "|---|---|---|---|---|---|"]
    for s in record["steps"]:
        mark = " **best**" if s["step"] == record["best_step"] else ""
        lines.append(f"| {s['step']}{mark} | {s['added'] or '(none: the original)'} | "
                     f"{s['layers_kept']} | {_mb(s['size_bytes'])} | "
                     f"{_ms(s['latency_ms_p50'])} | {_failing(s)} |")
    return "\n".join(lines) + "\n"


def summary_lines(record: dict) -> str:
    c = record["confirmation"]
    best = record["steps"][record["best_step"]]
    return (f"confirmation half: repaired {c['repaired'][FAIL]} failing "
            f"({c['repaired'][INCONCLUSIVE]} inconclusive, {c['repaired'][PASS]} passed) vs "
            f"original {c['original'][FAIL]} failing; size {_mb(best['size_bytes'])} "
            f"(original {_mb(record['original']['size_bytes'])}, reference "
            f"{_mb(record['reference']['size_bytes'])}); verdict {c['verdict'].upper()}\n")


def write_repair(run_dir: Path, record: dict) -> list[Path]:
    stem = f"repair-{record['candidate']}"
    paths = [run_dir / f"{stem}.json", run_dir / f"{stem}.md",
             run_dir / f"{stem}.candidate.yaml"]
    write_text(paths[0], json.dumps(finite(record), indent=2, allow_nan=False))
    write_text(paths[1], f"# Repair of {record['candidate']}\n\n{record['method']}.\n\n"
                         + step_table(record) + "\n" + summary_lines(record))
    verdict = record["confirmation"]["verdict"]
    write_text(paths[2], f"# validator repair ({verdict} on the confirmation half): add to "
                         f"`candidates:` of the gate config to gate it.\n"
               + yaml.safe_dump({"candidates": [record["config"]]}, sort_keys=False,
                                default_flow_style=None))
    return paths
