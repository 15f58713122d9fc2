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
from validator.judge.evenness import concentration
from validator.judge.gate import GateResult
from validator.metrics import METRICS
from validator.cpu import cpu_facts
from validator.outputs.majority import majority_metrics
from validator.record.schema import SCHEMA_VERSION, RunRecord, build_record
from validator.data.sample import Sample
from validator.scoring import Predictions
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


EVEN, CONCENTRATED = 0.35, 0.6


def evenness(checks: list[dict], dimensions: list[str]) -> list[dict]:
    """Per candidate and slice: is the loss spread across dimensions or concentrated?
    concentration = the largest positive degradation / the sum of positive degradations
    (1/k when k dimensions lose equally, 1.0 when one dimension carries it all)."""
    grouped: dict = {}
    for c in checks:
        if c["dimension"] in dimensions:
            grouped.setdefault((c["candidate"], c["slice"]), []).append(c["degradation"])
    out = []
    for (candidate, slice_name), values in grouped.items():
        positive = [v for v in values if v is not None and v > 0]
        share = concentration(values)
        label = ("no loss" if share is None else "even" if share <= EVEN
                 else "concentrated" if share >= CONCENTRATED else "mixed")
        out.append({"candidate": candidate, "slice": slice_name, "concentration": share,
                    "dimensions_degraded": len(positive), "label": label})
    return out


BASIS = {"capacity_rps": "requests / capacity (requests/s one instance sustains within "
                         "the {slo:g} ms p95 SLO, closed-loop load test) x instance cost "
                         "per hour",
         "throughput_rows_per_s": "requests / measured throughput (rows/s; no capacity "
                                  "measured) x instance cost per hour"}


def cost_projection(cost, scorers: list[dict], slo_ms: float) -> dict | None:
    from validator.speed.mix import instance_price, rate_key

    if cost is None:
        return None
    key = rate_key([s for s in scorers if s["backend"] != "route"])
    prices = {"requests_per_month": cost.requests_per_month,
              "instance_cost_per_hour": cost.instance_cost_per_hour,
              "instance_cost_per_hour_by_device": cost.instance_cost_per_hour_by_device}
    per_scorer = {}
    for s in scorers:
        rate = s[key]
        hours = cost.requests_per_month / rate / 3600 if rate else None
        per_scorer[s["name"]] = None if hours is None else hours * instance_price(s, prices)
    projection = {**prices, "basis": BASIS[key].format(slo=slo_ms),
                  "monthly_cost": per_scorer}
    return {**projection, "deployments": deployments(projection, scorers)}


def deployments(cost: dict, scorers: list[dict]) -> list[dict]:
    """Each candidate's traffic mix, instances, monthly cost and saving (decide.mix)."""
    from validator.speed.mix import deployment_cost

    by_name = {s["name"]: s for s in scorers}
    found = [deployment_cost(s["name"], s["traffic"] or {s["name"]: 1.0}, by_name, cost,
                             scorers[0]["name"]) for s in scorers[1:]]
    return [d for d in found if d is not None]


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


def build_summary(config: Config, sample: Sample, slice_set: SliceSet, masks: pd.DataFrame,
                  predictions: Predictions, metrics: pd.DataFrame, gate: GateResult,
                  operating: dict | None = None) -> RunRecord:
    """The run record, validated before anything is written."""
    metric = METRICS[config.gate.metric]
    counts = {v: len(gate.by_verdict(v)) for v in ("pass", "fail", "inconclusive")}
    checks = [c.as_dict() for c in gate.checks]
    scorers = [asdict(info) for info in predictions.scorers]
    cpu = cpu_facts(config.serving.isa)
    verdict, exit_code = ("inconclusive", 1) if cpu["missing_isa"] else \
        (gate.verdict, gate.exit_code)  # kernels production will not use decide nothing
    return build_record(_clean({
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "slice-validator", "version": validator.__version__,
                 "python": platform.python_version(), "libraries": library_versions()},
        "verdict": verdict,
        "exit_code": exit_code,
        "counts": counts,
        "config": {"source": config.source, "seed": config.seed},
        "gate": {**config.gate.model_dump(mode="json"), "unit": metric.unit,
                 "higher_is_better": metric.higher_is_better,
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
                    "rows": int(masks[s.name].sum()), "where": s.where_yaml}
                   for s in slice_set.slices],
        "checks": checks,
        "evenness": evenness(checks, list(config.rubric.dimensions)),
        "data_checks": sample.checks,
        "metrics": pd.concat([metrics, majority_metrics(sample.human, masks,
                                                        config.rubric.scale)],
                             ignore_index=True).to_dict(orient="records"),
    }))


def predictions_table(sample: Sample, predictions: Predictions,
                      masks: pd.DataFrame) -> pd.DataFrame:
    """One row per gate row: id, text, human:{dim}, {scorer}:{dim}, slice:{name}."""
    text = sample.frame[[sample.text_column]].set_axis(["text"], axis=1)
    human = sample.human.add_prefix("human:")
    slices = masks.add_prefix("slice:")
    table = pd.concat([text, human, predictions.frame, slices], axis=1)
    return table.rename_axis("id").reset_index()
