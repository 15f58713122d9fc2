"""summary.json (schema v1, typed by ``validator.record.schema``) and the predictions table:
the two records of a run.

Every other output (report.html, junit.xml, summary.md) is rendered from the
summary alone, so every figure they show can be traced back to it.
"""

from __future__ import annotations

import math
import platform
from dataclasses import asdict

import pandas as pd

import validator
from validator.config import Config
from validator.judge.evenness import evenness
from validator.judge.gate import GateResult, guard_metric
from validator.metrics import METRICS
from validator.judge.majority import majority_metrics
from validator.record.schema import SCHEMA_VERSION, RunRecord, build_record
from validator.data.sample import Sample
from validator.scoring import Predictions
from validator.speed.mix import cost_projection
from validator.data.slices import SliceSet


def _clean(value):
    """JSON has no NaN: undefined values become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def speed_probe_record(config: Config, predictions: Predictions) -> dict:
    probe = predictions.probe
    rows = len(probe.texts) if probe else 0
    return {"latency_texts": rows, "latency_batch_size": 1,
            "throughput_rows": rows, "selection": probe.how if probe else None,
            "slo_ms": config.report.slo_ms,
            "instance_memory_gb": config.report.instance_memory_gb,
            "ratios_provisional": any(s.ratio_provisional for s in predictions.scorers)}


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ["slice-validator", "pandas", "numpy", "scikit-learn", "scipy", "statsmodels",
             "torch", "transformers", "onnx", "onnxruntime", "jinja2", "pyarrow"]
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def location_guard_record(config: Config) -> dict | None:
    """The location guard the gate metric declares (docs/thresholds.md), or None."""
    guard = guard_metric(config.gate)
    if guard is None:
        return None
    metric, max_drop = guard
    return {"metric": metric.name, "unit": metric.unit, "max_drop": max_drop,
            "blind_to": METRICS[config.gate.metric].blind_to}


def build_summary(config: Config, sample: Sample, slice_set: SliceSet, masks: pd.DataFrame,
                  predictions: Predictions, metrics: pd.DataFrame, gate: GateResult,
                  operating: dict | None = None, cpu: dict | None = None,
                  warnings: tuple[str, ...] = ()) -> RunRecord:
    """The run record, validated before anything is written; ``cpu``: the machine's
    facts (validator.cpu) that the gate's verdict already took into account."""
    metric = METRICS[config.gate.metric]
    counts = {v: len(gate.by_verdict(v)) for v in ("pass", "fail", "inconclusive")}
    checks = [c.as_dict() for c in gate.checks]
    scorers = [asdict(info) for info in predictions.scorers]
    return build_record(_clean({
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "slice-validator", "version": validator.__version__,
                 "python": platform.python_version(), "libraries": library_versions()},
        "verdict": gate.verdict,
        "exit_code": gate.exit_code,
        "counts": counts,
        "warnings": list(warnings),
        "config": {"source": config.source, "seed": config.seed},
        "gate": {**config.gate.model_dump(mode="json"), "unit": metric.unit,
                 "higher_is_better": metric.higher_is_better,
                 "range": list(metric.range_on(config.rubric.scale)),
                 "location_guard": location_guard_record(config),
                 "operating_characteristics": operating},
        "sample": {"path": str(sample.path), "rows": len(sample.frame),
                   "total_rows": sample.total_rows, "sha256": sample.sha256,
                   "where": config.sample.where, "text_column": sample.text_column},
        "rubric": {"scale": list(config.rubric.scale),
                   "dimensions": list(config.rubric.dimensions)},
        "scorers": scorers,
        "cost": cost_projection(config.report.cost, scorers, config.report.slo_ms),
        "speed_probe": speed_probe_record(config, predictions),
        "cpu": cpu,
        "slices": [{"name": s.name, "description": s.description, "file": s.file,
                    "rows": int(masks[s.name].sum()), "where": s.where_yaml,
                    **rated_and_pool(sample, masks[s.name].to_numpy(dtype=bool))}
                   for s in slice_set.slices],
        "design": design_record(sample),
        "checks": checks,
        "evenness": evenness(checks, list(config.rubric.dimensions)),
        "data_checks": sample.checks,
        "metrics": pd.concat([metrics, majority_metrics(sample.human, masks,
                                                        config.rubric.scale)],
                             ignore_index=True).to_dict(orient="records"),
    }))


TWO_PHASE = ("two-phase (double sampling for stratification, Cochran 1977 ch. 12): flip "
             "rates from every scored row, differences on flips from the rated rows "
             "weighted 1/inclusion probability; bootstrap over pool rows")
ALL_RATED = "paired bootstrap over rated rows (every gate row rated, equal weights)"


def rated_and_pool(sample: Sample, mask) -> dict:
    rated = sample.row_design["rated"].to_numpy(dtype=bool)[mask]
    return {"rated_rows": int(rated.sum()), "pool_rows": int((~rated).sum())}


def design_record(sample: Sample) -> dict:
    counts = rated_and_pool(sample, slice(None))
    plain = counts["pool_rows"] == 0 and sample.unequal_weights is None
    return {"method": ALL_RATED if plain else TWO_PHASE, "rating_plan": sample.rating_plan,
            **counts}


def predictions_table(sample: Sample, predictions: Predictions,
                      masks: pd.DataFrame) -> pd.DataFrame:
    """One row per gate row: id, text, human:{dim}, {scorer}:{dim}, slice:{name}, and the
    design: rated, inclusion_probability, stratum (human:{dim} is NaN on pool rows)."""
    text = sample.frame[[sample.text_column]].set_axis(["text"], axis=1)
    human = sample.human.add_prefix("human:")
    slices = masks.add_prefix("slice:")
    design = sample.row_design[["rated", "inclusion_probability", "stratum"]]
    table = pd.concat([text, human, predictions.frame, slices, design], axis=1)
    return table.rename_axis("id").reset_index()
