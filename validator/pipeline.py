"""The orchestrator: calls the stages in order and does nothing else.

plan (config, slices, sample: everything that needs no scoring) -> scores -> metrics
-> gate (on this CPU) -> operating characteristics -> record (+ discovery, if enabled)
-> provenance (the run block) -> outputs
"""

from __future__ import annotations

from pathlib import Path

from validator.config import Config
from validator.after.discover_section import discover_in_run
from validator.cpu import cpu_facts
from validator.judge.gate import evaluate_gate, require_serving_isa
from validator.metrics import compute_metrics
from validator.judge.operating import operating_characteristics
from validator.outputs import write_outputs
from validator.record.ownership import canonical_out, check_inputs_outside, run_folder
from validator.record.build import build_summary, predictions_table
from validator.record.provenance import Clock
from validator.data.rating_plan import check_strata
from validator.plan import make_plan
from validator.record.schema import RunRecord
from validator.scorers import ProgressFactory, no_progress
from validator.scoring import prepare_measuring, score_sample


def run_gate(config: Config, out_dir: Path, progress: ProgressFactory = no_progress,
             use_cache: bool = True, baseline: tuple[Path, RunRecord] | None = None,
             force: bool = False, report_url: str | None = None) -> RunRecord:
    """Run the whole gate; returns the run record (also written under ``out_dir``, with
    the comparison against ``baseline``, an earlier run's folder and record, if given).
    The run holds ``out_dir``'s lock throughout; ``force`` lets it replace a previous
    run there (validator.record.ownership)."""
    out_dir = canonical_out(out_dir)
    check_inputs_outside(out_dir, run_inputs(config))
    with run_folder(out_dir, force):
        return _run(config, out_dir, progress, use_cache, baseline, report_url)


def run_inputs(config: Config) -> list[Path]:
    """The files and folders a run reads: sample, rating plan, slices, model folders."""
    models = [Path(s.model) for s in (config.reference, *config.candidates)
              if getattr(s, "model", None) not in (None, "default")]
    plan = [config.sample.rating_plan] if config.sample.rating_plan else []
    return [config.sample.path, *plan, *config.slices, *models]


def _run(config: Config, out_dir: Path, progress: ProgressFactory, use_cache: bool,
         baseline: tuple[Path, RunRecord] | None, report_url: str | None) -> RunRecord:
    clock = Clock()
    prepare_measuring(config)
    plan = make_plan(config)
    sample, slice_set, masks = plan.sample, plan.slices, plan.masks
    predictions = score_sample(config, sample, progress, use_cache, plan.routers, masks)
    scores = {info.name: predictions.of(info.name, list(config.rubric.dimensions))
              for info in predictions.scorers}
    if sample.rating_plan is not None:  # chosen from predictions: these predictions
        check_strata(sample.design["stratum"], scores[config.reference.name],
                     {c.name: scores[c.name] for c in config.candidates},
                     list(config.rubric.dimensions), masks, config.rubric.scale,
                     config.gate.metric, sample.rating_plan)
    metrics = compute_metrics(sample.human, scores, masks, config.rubric.scale, sample.raters,
                              weights=sample.unequal_weights)
    cpu = cpu_facts(config.serving.isa)
    gate = require_serving_isa(evaluate_gate(metrics, sample.human, scores, masks, config,
                                             sample.weights), cpu["missing_isa"])
    operating = operating_characteristics(gate, masks, config.gate, config.seed)
    summary = build_summary(config, sample, slice_set, masks, predictions, metrics, gate,
                            operating, cpu, plan.warnings)
    table, extra = predictions_table(sample, predictions, masks), {}
    if config.discovery.enabled:
        summary, extra = discover_in_run(summary, table, out_dir, config.discovery)
    summary = clock.stamp(summary, config)
    return write_outputs(out_dir, summary, table, extra, baseline, report_url)
