"""``validator plan-ratings``: which pool rows to send to raters, from a run directory.

Reads summary.json and predictions.parquet (nothing is re-scored, no rating is read to
choose rows), builds the design of ``validator.data.design`` over the run's gate rows,
selects ``budget`` unrated rows and writes:

- ``PLAN.csv``: one line per gate row, the rows to send to raters first
  (``phase``: ``to_rate``, then ``rated`` for rows rated already, ``not_chosen`` for
  the rest of the pool, whose stratum the estimates need), with ``id``, ``text``,
  ``inclusion_probability``, ``stratum``, ``slices`` (semicolon-separated), ``phase``
  and ``pool_ids_sha256`` (of the run's gate rows, so a changed pool is caught);
- ``PLAN.summary.json`` beside it: the allocation per stratum and, per slice, the
  smallest degradation the plan can rule out, next to uniform rating of the same budget.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from validator.data import design
from validator.errors import ValidatorError
from validator.record.ownership import check_not_a_record, check_replaceable, file_sha256
from validator.record.run_dir import RunDir
from validator.record.write import write_text
from validator.record.schema import GateRecord

UNIFORM_SHARE = 0.1  # of the budget, spread uniformly (absolute values, no zero pi)


@dataclass(frozen=True)
class RunPredictions:
    """What the design needs of a run: predictions per scorer, slices, rated rows."""
    table: pd.DataFrame            # predictions.parquet, indexed by id
    reference: dict[str, np.ndarray]
    candidates: dict[str, dict[str, np.ndarray]]
    masks: pd.DataFrame            # slice name -> bool, `all` included
    rated: np.ndarray              # bool per row
    gate: GateRecord
    scale: tuple[int, int]


def read_predictions(run_dir: Path) -> RunPredictions:
    run = RunDir.read(run_dir)  # verified against summary.json's hashes
    dimensions = run.dimensions
    run.require_columns(["id", "text"] + [f"{s.name}:{d}" for s in run.record.scorers
                                          for d in dimensions])
    table = run.table.set_index(run.table["id"].astype(str))
    columns = lambda name: {d: table[f"{name}:{d}"].to_numpy(np.float64) for d in dimensions}
    masks = table[[f"slice:{name}" for name in run.slices]]
    masks = masks.rename(columns=lambda c: c.removeprefix("slice:")).astype(bool)
    if "rated" in table.columns:
        rated = table["rated"].to_numpy(dtype=bool)
    else:  # a run from before the pool: rated where any human rating is there
        human = table[[f"human:{d}" for d in dimensions]]
        rated = human.notna().any(axis=1).to_numpy()
    return RunPredictions(table, columns(run.reference),
                          {name: columns(name) for name in run.candidates},
                          masks, rated, run.gate, run.scale)


def check_budget(budget: int, pool_rows: int, run_dir: Path) -> None:
    if pool_rows == 0:
        raise ValidatorError(f"{run_dir}: every gate row is rated already; no pool rows "
                             f"to plan ratings for")
    if not 1 <= budget <= pool_rows:
        raise ValidatorError(f"--budget {budget}: must be between 1 and the "
                             f"{pool_rows} unrated pool rows of {run_dir}")


def make_plan(run_dir: Path, budget: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """(PLAN.csv rows, PLAN.summary.json content) for ``budget`` new ratings."""
    run = read_predictions(run_dir)
    pool = ~run.rated
    check_budget(budget, int(pool.sum()), run_dir)
    bounds = design.row_bounds(run.reference, run.candidates, run.scale, run.gate.metric)
    strata = design.assign_strata(bounds, run.masks)
    weights = design.row_weights(bounds, run.masks)
    home = design.home_slices(run.masks)
    allocation = design.allocate(strata[pool], weights[pool], home[pool], budget,
                                 run.gate.min_rows, UNIFORM_SHARE)
    if len(allocation.strata) > budget:
        raise ValidatorError(f"--budget {budget}: the pool has {len(allocation.strata)} "
                             f"strata and each needs at least one rated row")
    chosen = design.select(strata[pool], allocation, seed)
    plan_probability = strata.map(allocation.probability).fillna(0.0).to_numpy()
    probability = design.combined_probability(plan_probability, int(run.rated.sum()),
                                              len(strata))
    pool_hash = design.pool_ids_sha256(run.table.index)
    rows = plan_rows(run, strata, probability, chosen, pool_hash, seed)
    uniform = np.full(len(strata), design.combined_probability(
        np.array(budget / pool.sum()), int(run.rated.sum()), len(strata)))
    record = {
        "method": "stratified simple random sampling; Neyman allocation on per-row "
                  "flip/|difference| bounds with a floor per slice and a uniform share",
        "budget": budget, "seed": seed, "gate_rows": len(strata),
        "pool_rows": int(pool.sum()), "rated_before": int(run.rated.sum()),
        "uniform_share": UNIFORM_SHARE, "floor_per_slice": run.gate.min_rows,
        "pool_ids_sha256": pool_hash, "metric": run.gate.metric,
        "strata": allocation.strata.reset_index(names="stratum").to_dict("records"),
        "slices": slice_power(run, bounds, probability, uniform),
    }
    return rows, record


def plan_rows(run: RunPredictions, strata: pd.Series, probability: np.ndarray,
              chosen: pd.Index, pool_hash: str, seed: int) -> pd.DataFrame:
    """Every gate row with its design columns, the rows to rate first."""
    names = run.masks.drop(columns=["all"], errors="ignore")
    member = names.to_numpy(dtype=bool)
    slices = [";".join(names.columns[row]) for row in member]
    frame = pd.DataFrame({
        "id": run.table.index, "text": run.table["text"].to_numpy(),
        "inclusion_probability": probability, "stratum": strata.to_numpy(),
        "slices": slices,
        "phase": np.select([run.rated, run.table.index.isin(chosen)],
                           ["rated", "to_rate"], "not_chosen"),
        "pool_ids_sha256": pool_hash, "seed": seed})
    order = frame["phase"].map({"to_rate": 0, "rated": 1, "not_chosen": 2})
    return frame.assign(_order=order).sort_values(["_order", "id"], ignore_index=True) \
        .drop(columns="_order")


def slice_power(run: RunPredictions, bounds: dict, probability: np.ndarray,
                uniform: np.ndarray) -> list[dict]:
    """Per slice: the smallest degradation the plan (and uniform rating of the same
    budget) can rule out, median and worst over the slice's (candidate, dimension)
    checks, and how many checks that would decide at their max_drop."""
    confidence = run.gate.confidence
    out = []
    for name in run.masks.columns:
        mask = run.masks[name].to_numpy()
        entry = {"slice": name, "rows": int(mask.sum()),
                 "pool_rows": int((mask & ~run.rated).sum()),
                 "rated_rows": int((mask & run.rated).sum()),
                 "expected_rated_rows": round(float(probability[mask].sum()), 1)}
        for label, pi in (("plan", probability), ("uniform", uniform)):
            limits, decided = [], 0
            for (candidate, dimension), bound in bounds.items():
                limit = design.ruled_out(bound[mask], pi[mask], confidence)
                limits.append(limit)
                decided += bool(limit <= run.gate.max_drop_for(candidate, name, dimension))
            entry[f"ruled_out_{label}_median"] = round(float(np.median(limits)), 3)
            entry[f"ruled_out_{label}_worst"] = round(float(np.max(limits)), 3)
            entry[f"checks_decidable_{label}"] = decided
        entry["checks"] = len(bounds)
        entry["flip_rate"] = round(float(np.mean([(b[mask] > 0).mean() for b in
                                                  bounds.values()])), 4)
        out.append(entry)
    return out


def write_plan(rows: pd.DataFrame, record: dict, out: Path) -> Path:
    """PLAN.csv and PLAN.summary.json beside it; returns the summary's path. The summary
    records the plan's sha256 (``plan_sha256``), so planning again into the same files
    replaces a pair the tool wrote and nobody changed, and nothing else."""
    if out.suffix.lower() != ".csv" or out.stem in ("", "."):
        raise ValidatorError(f"--out {str(out)!r}: name the plan's .csv file, e.g. "
                             f"--out rating-plan.csv")
    summary_path = out.with_suffix(".summary.json")
    text = rows.to_csv(index=False)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    try:
        for path in (out, summary_path):
            check_not_a_record(path)
        if not own_plan(out, summary_path):
            check_replaceable([out, summary_path])
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, text)
        write_text(summary_path, json.dumps({**record, "plan_file": out.name,
                                             "plan_sha256": digest}, indent=2) + "\n")
    except OSError as exc:
        raise ValidatorError(f"{out}: cannot be written ({exc.strerror or exc})") from exc
    return summary_path


def own_plan(out: Path, summary_path: Path) -> bool:
    """Whether ``out`` and its summary are a plan pair this tool wrote, unchanged: the
    summary names ``out`` (``plan_file``) and holds its sha256. A copy of a plan under
    another name is not its summary's plan, so it is never replaced."""
    if not (out.is_file() and summary_path.is_file()) or out.is_symlink() \
            or summary_path.is_symlink():
        return False
    try:
        recorded = json.loads(summary_path.read_text(encoding="utf-8"))
        name, digest = recorded.get("plan_file"), recorded.get("plan_sha256")
    except (OSError, ValueError, AttributeError):
        return False
    return name == out.name and digest is not None and digest == file_sha256(out)


def power_table(record: dict) -> str:
    """The terminal statement: per slice, what the plan can rule out before rating."""
    lines = [f"{'slice':<28} {'pool':>6} {'rated':>7} {'flips':>6} "
             f"{'rule out (plan)':>16} {'(uniform)':>10} {'decidable':>10}"]
    for s in record["slices"]:
        lines.append(f"{s['slice']:<28} {s['pool_rows']:>6} {s['expected_rated_rows']:>7.0f} "
                     f"{s['flip_rate']:>6.1%} {s['ruled_out_plan_median']:>16.2f} "
                     f"{s['ruled_out_uniform_median']:>10.2f} "
                     f"{s['checks_decidable_plan']:>4}/{s['checks']:<5}")
    return "\n".join(lines) + "\n"
