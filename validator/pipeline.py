"""The orchestrator: calls the stages in order and does nothing else.

sample -> slices -> scores -> metrics -> gate -> outputs (-> discovery, if enabled)
"""

from __future__ import annotations

from pathlib import Path

from validator.config import Config
from validator.decide.discover import discover_after_run
from validator.gate import evaluate_gate
from validator.metrics import compute_metrics
from validator.outputs import write_outputs
from validator.outputs.summary import build_summary, predictions_table
from validator.sample import load_sample
from validator.scorers import ProgressFactory, no_progress
from validator.scoring import score_sample
from validator.slices import assign_slices, load_slices


def run_gate(config: Config, out_dir: Path, progress: ProgressFactory = no_progress,
             use_cache: bool = True) -> dict:
    """Run the whole gate; returns the summary (also written under ``out_dir``)."""
    slice_set = load_slices(config.slices)
    sample = load_sample(config, slice_set.expectations)
    masks = assign_slices(slice_set, sample.frame)
    predictions = score_sample(config, sample, progress, use_cache)
    scores = {info.name: predictions.of(info.name, list(config.rubric.dimensions))
              for info in predictions.scorers}
    metrics = compute_metrics(sample.human, scores, masks, config.rubric.scale, sample.raters)
    gate = evaluate_gate(metrics, sample.human, scores, masks, config)
    summary = build_summary(config, sample, slice_set, masks, predictions, metrics, gate)
    write_outputs(out_dir, summary, predictions_table(sample, predictions, masks))
    if config.discovery.enabled:
        discover_after_run(out_dir, config.discovery)
    return summary
