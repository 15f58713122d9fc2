"""summary.json (schema v1) and the predictions table: the two records of a run.

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
from validator.gate import GateResult
from validator.metrics import METRICS
from validator.sample import Sample
from validator.scoring import LATENCY_TEXTS, THROUGHPUT_ROWS, Predictions
from validator.slices import SliceSet

SCHEMA_VERSION = 1


def _clean(value):
    """JSON has no NaN: undefined values become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ["pandas", "numpy", "scikit-learn", "scipy", "torch", "transformers", "jinja2"]
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def build_summary(config: Config, sample: Sample, slice_set: SliceSet, masks: pd.DataFrame,
                  predictions: Predictions, metrics: pd.DataFrame, gate: GateResult) -> dict:
    metric = METRICS[config.gate.metric]
    counts = {v: len(gate.by_verdict(v)) for v in ("pass", "fail", "inconclusive")}
    return _clean({
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "slice-validator", "version": validator.__version__,
                 "python": platform.python_version(), "libraries": library_versions()},
        "verdict": gate.verdict,
        "exit_code": gate.exit_code,
        "counts": counts,
        "config": {"source": config.source, "seed": config.seed},
        "gate": {**config.gate.model_dump(mode="json"), "unit": metric.unit,
                 "higher_is_better": metric.higher_is_better},
        "sample": {"path": str(sample.path), "rows": len(sample.frame),
                   "total_rows": sample.total_rows, "sha256": sample.sha256,
                   "where": config.sample.where, "text_column": sample.text_column},
        "rubric": {"scale": list(config.rubric.scale),
                   "dimensions": list(config.rubric.dimensions)},
        "scorers": [asdict(info) for info in predictions.scorers],
        "speed_probe": {"latency_texts": LATENCY_TEXTS, "latency_batch_size": 1,
                        "throughput_rows": THROUGHPUT_ROWS},
        "slices": [{"name": s.name, "description": s.description, "file": s.file,
                    "rows": int(masks[s.name].sum())} for s in slice_set.slices],
        "checks": [c.as_dict() for c in gate.checks],
        "metrics": metrics.to_dict(orient="records"),
    })


def predictions_table(sample: Sample, predictions: Predictions, masks: pd.DataFrame) -> pd.DataFrame:
    """One row per gate row: id, human:{dim}, {scorer}:{dim}, slice:{name}."""
    human = sample.human.add_prefix("human:")
    slices = masks.add_prefix("slice:")
    table = pd.concat([human, predictions.frame, slices], axis=1)
    return table.rename_axis("id").reset_index()
