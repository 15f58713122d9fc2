"""``validator diagnose``: which layers a failing slice is sensitive to.

For each target slice (the candidate's failing slices, worst first, or the ones named)
and its worst check's dimension:

1. **Library measurement.** On up to ``probe_rows`` of the slice's rows, the per-layer
   SQNR of quantizing that layer (validator.after.sensitivity: ONNX Runtime's
   ``qdq_loss_debug`` for ONNX graphs, the ``torch.ao.ns`` numeric suite for torch).
2. **Keep it in fp32.** The ``top`` layers with the lowest SQNR are each kept in fp32
   alone (the recipe's ``exclude``, rebuilt through the artefact cache) and the slice's
   rows re-scored: the change in the distance of the candidate's predictions to the
   reference's (RMSE of raw predictions) and in the gate metric's degradation. The
   candidate itself and every variant are scored afresh on the same rows (not from the
   prediction cache), so dynamic INT8's per-batch activation ranges are the same for
   all of them and the change is the layer's alone.

The gate rows are split by a stable hash of the id (as ``validator recommend`` does):
layers are probed and ranked on the **search** half; the effect of keeping each one in
fp32 is also reported on the **confirmation** half, which the ranking never saw. Rank
1 is the measured layer that moved the slice's predictions most toward the reference;
unmeasured layers follow by SQNR.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from validator.after import sensitivity
from validator.after.rebuild import Workbench
from validator.after.recommend import selection_half
from validator.errors import ValidatorError
from validator.metrics import ALL_DIMENSIONS, get_metric, pairs
from validator.record.write import write_text
from validator.scorers import RECIPES, recipes_that
from validator.scorers.layers import Unit, units

OVERALL = "all"


@dataclass(frozen=True)
class Target:
    slice: str
    dimension: str
    degradation: float | None   # the run's, on every row of the slice


def targets(run, candidate: str, named: list[str] | None) -> list[Target]:
    """The named slices (each at its worst check), else the failing ones, worst first;
    ``all`` only when no narrower slice fails."""
    checks = [c for c in run.record.checks if c.candidate == candidate
              and c.role == "gate"]  # degradations in the gate metric's unit
    for name in named or []:
        if name not in run.slices:
            raise ValidatorError(f"--slice: unknown slice {name!r} (defined: "
                                 f"{', '.join(run.slices)})")
    if named:
        pool = [c for c in checks if c.slice in named]
    else:
        failing = [c for c in checks if c.verdict == "fail"]
        pool = [c for c in failing if c.slice != OVERALL] or failing
    if not pool:
        raise ValidatorError(f"{candidate}: no failing check to diagnose; name slices "
                             f"with --slice")
    worst = {}
    for check in sorted(pool, key=lambda c: -(c.degradation or -np.inf)):
        worst.setdefault(check.slice, Target(check.slice, check.dimension, check.degradation))
    return list(worst.values())


def _columns(run, dimension: str) -> list[int]:
    return list(range(len(run.dimensions))) if dimension == ALL_DIMENSIONS else \
        [run.dimensions.index(dimension)]


def distance(run, values: np.ndarray, rows: np.ndarray, dimension: str) -> float:
    """RMSE of raw predictions to the reference's on the rows, for the dimension."""
    cols = _columns(run, dimension)
    gap = values[np.ix_(rows, cols)] - run.scores(run.reference)[np.ix_(rows, cols)]
    return float(np.sqrt(np.mean(gap ** 2)))


def degradation(run, values: np.ndarray, rows: np.ndarray, dimension: str) -> float:
    """The gate metric's degradation (reference vs these predictions) on the rows."""
    metric = get_metric(run.gate.metric)
    human = pd.DataFrame({d: run.table[f"human:{d}"].to_numpy(float)[rows]
                          for d in run.dimensions})
    everything = np.ones(int(rows.sum()), dtype=bool)
    scale = run.scale
    h_ref, p_ref, _ = pairs(human, run.scores(run.reference)[rows], everything, dimension)
    h, p, _ = pairs(human, values[rows], everything, dimension)
    return metric.degradation(metric.value(h_ref, p_ref, scale), metric.value(h, p, scale))


def probe_rows(run, mask: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Up to ``limit`` rows of the mask, drawn with the run's seed."""
    rows = np.flatnonzero(mask)
    if len(rows) > limit:
        rows = np.sort(np.random.default_rng(seed).choice(rows, limit, replace=False))
    out = np.zeros(len(mask), dtype=bool)
    out[rows] = True
    return out


def library_errors(bench: Workbench, scorer, layers, texts: list[str]) -> tuple[dict, str]:
    if RECIPES[bench.recipe].runtime == "onnxruntime":
        return (sensitivity.onnx_layer_errors(bench.fp32_graph(), scorer.onnx_file,
                                              bench.reference, layers, texts),
                sensitivity.ONNX_TOOL)
    return (sensitivity.torch_layer_errors(bench.reference, scorer, layers, texts),
            sensitivity.TORCH_TOOL)


def effects(bench: Workbench, base: np.ndarray, variant: np.ndarray, target: Target,
            halves: dict[str, np.ndarray], mask: np.ndarray) -> dict:
    run = bench.run
    out = {}
    for half, rows in halves.items():
        rows = rows & mask
        out[f"distance_change_{half}"] = (distance(run, variant, rows, target.dimension)
                                          - distance(run, base, rows, target.dimension))
        out[f"degradation_change_{half}"] = (
            degradation(run, variant, rows, target.dimension)
            - degradation(run, base, rows, target.dimension))
    return out


def _rank(entries: list[dict]) -> list[dict]:
    measured = sorted((e for e in entries if e["measured"]),
                      key=lambda e: e["distance_change_search"])
    rest = sorted((e for e in entries if not e["measured"]), key=lambda e: e["sqnr_db"])
    for rank, entry in enumerate([*measured, *rest], start=1):
        entry["rank"] = rank
    return [*measured, *rest]


def unit_errors(units_: list[Unit], errors: dict[str, dict]) -> dict[str, dict]:
    """Per unit: the SQNR of its quantized layers together (their noise powers add)."""
    out = {}
    for unit in units_:
        measured = [errors[layer.name]["sqnr_db"] for layer in unit.layers
                    if layer.name in errors]
        if measured:
            out[unit.name] = {"sqnr_db": sensitivity.combined_db(*measured),
                              "layers_quantized": len(measured),
                              "worst_layer_sqnr_db": min(measured)}
            if len(unit.layers) == 1:
                out[unit.name].update(errors[unit.layers[0].name])
    return out


def diagnose(bench: Workbench, slices: list[str] | None, top: int, probe_limit: int,
             by: str = "block", max_rows: int | None = None) -> dict:
    """The ranked record; ``max_rows`` caps each slice's rows scored for the effects
    (a seeded draw; default: all)."""
    run, candidate = bench.run, bench.spec.name
    if bench.recipe not in RECIPES or not RECIPES[bench.recipe].diagnosable:
        raise ValidatorError(f"--candidate: diagnose measures "
                             f"{' and '.join(recipes_that('diagnosable'))} "
                             f"candidates; {candidate!r} is {bench.recipe!r}")
    chosen = targets(run, candidate, slices)
    search = selection_half(run.table["id"])
    halves = {"search": search, "confirm": ~search}
    scorer = bench.variant([])
    layers = bench.layers()
    by_name = {unit.name: unit for unit in units(layers, by)}
    seed = run.seed
    scored = {t.slice: probe_rows(run, run.mask(t.slice), max_rows or len(run.table),
                                  seed + 1) for t in chosen}
    union = np.logical_or.reduce(list(scored.values()))
    full = np.full((len(run.table), len(run.dimensions)), np.nan)
    full[union] = bench.predict(scorer, union, cached=False)  # batched like the variants
    records, summaries, tool = [], [], ""
    for target in chosen:
        probed = probe_rows(run, run.mask(target.slice) & search, probe_limit, seed)
        errors, tool = library_errors(bench, scorer, layers, bench.texts(probed))
        errors = unit_errors(list(by_name.values()), errors)
        order = sorted(errors, key=lambda n: errors[n]["sqnr_db"])
        entries = []
        for name in order:
            unit = by_name[name]
            entry = {"slice": target.slice, "dimension": target.dimension, "layer": name,
                     "module": unit.layers[0].module if len(unit.layers) == 1 else name,
                     "op_type": unit.op_type, "exclude": list(unit.patterns),
                     "layers": len(unit.layers), **errors[name],
                     "measured": name in order[:top]}
            if entry["measured"]:
                variant = np.full_like(full, np.nan)
                variant[union] = bench.predict(bench.variant(list(unit.patterns)), union,
                                               cached=False)
                entry.update(effects(bench, full, variant, target, halves,
                                     scored[target.slice]))
            entries.append(entry)
        records.extend(_rank(entries))
        summaries.append({"slice": target.slice, "dimension": target.dimension,
                          "degradation_run": target.degradation,
                          "rows_probed": int(probed.sum()),
                          **{f"rows_{h}": int((rows & scored[target.slice]).sum())
                             for h, rows in halves.items()}})
    metric = get_metric(run.gate.metric)
    return {"candidate": candidate, "recipe": bench.recipe, "tool": tool, "by": by,
            "metric": metric.name, "unit": metric.unit, "top": top,
            "halves": "gate rows split by sha256 of the id: layers probed and ranked on "
                      "the search half, effects also shown on the confirmation half",
            "slices": summaries, "layers": records}


def markdown(record: dict, limit: int = 10) -> str:
    """One ranked table per slice (the first ``limit`` layers)."""
    lines = [f"# Layer sensitivity of {record['candidate']} ({record['recipe']})", "",
             f"Measured with {record['tool']}. SQNR: quantizing the layer alone, on the "
             f"slice's probed rows (lower: more error). Kept in fp32: the change when "
             f"only that layer stays in fp32 (negative: closer to the reference / less "
             f"degradation, {record['metric']} in {record['unit']}). {record['halves']}.",
             ""]
    for target in record["slices"]:
        lines += [f"## {target['slice']} ({target['dimension']}; degradation in the run "
                  f"{_fmt(target['degradation_run'])})", "",
                  "| rank | layer | module | op | SQNR dB | distance change | degradation "
                  "change (search) | degradation change (confirm) |",
                  "|---|---|---|---|---|---|---|---|"]
        for e in [e for e in record["layers"] if e["slice"] == target["slice"]][:limit]:
            lines.append(f"| {e['rank']} | {e['layer']} | {e['module'] or '-'} | "
                         f"{e['op_type']} | {_fmt(e['sqnr_db'], 1)} | "
                         f"{_fmt(e.get('distance_change_search'), 4)} | "
                         f"{_fmt(e.get('degradation_change_search'))} | "
                         f"{_fmt(e.get('degradation_change_confirm'))} |")
        lines.append("")
    return "\n".join(lines)


def finite(value):
    """NaN and infinities (an undefined metric) as null, for strict JSON."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:+.{digits}f}" if digits != 1 else f"{value:.1f}"


def write_diagnosis(run_dir: Path, record: dict) -> tuple[Path, Path]:
    json_path = run_dir / f"diagnose-{record['candidate']}.json"
    md_path = run_dir / f"diagnose-{record['candidate']}.md"
    write_text(json_path, json.dumps(finite(record), indent=2, allow_nan=False))
    write_text(md_path, markdown(record))
    return json_path, md_path
