"""Render a run's outputs: summary.json, predictions.parquet, junit.xml, summary.md,
report.html, and any extra files of the run (discovery's slice file), written as one
run directory by validator.record.write (complete or absent: a failure while writing
any of them, say report.html, leaves no summary.json behind). summary.json records the sha256 of every
other output (``outputs``), and the folder's manifest (``ownership``) every file the
tool wrote there: a run never deletes or replaces a file it did not write, and holds
the folder's lock until its outputs are in place.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from validator.outputs.baseline import Comparison, compare
from validator.outputs.advice import read_plan
from validator.outputs.after_sections import after_sections
from validator.outputs.html import render_html
from validator.outputs.junit import render_junit
from validator.outputs.markdown import render_markdown
from validator.record.ownership import file_sha256, write_manifest
from validator.record.run_dir import RunDir
from validator.record.schema import RunRecord
from validator.record.write import write_run_dir, write_text

RENDERERS = ("junit.xml", "summary.md")


OUTPUT_NAMES = ("summary.json", "predictions.parquet", *RENDERERS, "report.html")


def _stage(staging: Path, summary: RunRecord, predictions: pd.DataFrame,
           extra: dict[str, str], comparison: Comparison | None, out_dir: Path,
           report_url: str | None) -> RunRecord:
    """Every output into ``staging``; summary.json last, with the others' sha256."""
    predictions.to_parquet(staging / "predictions.parquet", index=False)
    for name, text in extra.items():
        (staging / name).write_text(text, encoding="utf-8")
    (staging / "junit.xml").write_text(render_junit(summary), encoding="utf-8")
    (staging / "summary.md").write_text(render_markdown(summary, comparison, out_dir,
                                                        report_url), encoding="utf-8")
    (staging / "report.html").write_text(render_html(summary, predictions, comparison,
                                                     run_dir=out_dir), encoding="utf-8")
    summary = summary.model_copy(update={"outputs": {
        p.name: file_sha256(p) for p in sorted(staging.iterdir()) if p.is_file()}})
    (staging / "summary.json").write_text(summary.to_json(), encoding="utf-8")
    missing = [name for name in OUTPUT_NAMES if not (staging / name).is_file()]
    if missing:
        raise OSError(f"{staging}: {', '.join(missing)} not written")
    write_manifest(staging, {p.name: file_sha256(p) for p in staging.iterdir() if p.is_file()})
    return summary


def write_outputs(out_dir: Path, summary: RunRecord, predictions: pd.DataFrame,
                  extra: dict[str, str] | None = None,
                  baseline: tuple[Path, RunRecord] | None = None,
                  report_url: str | None = None) -> RunRecord:
    """The run's five outputs, and ``extra`` files (name -> text), into ``out_dir`` at
    once; with a baseline run (its folder and record), report.html and summary.md also
    say what changed since it. ``report_url``: where CI publishes report.html (the
    link line of summary.md; default the relative report.html). Returns the record as
    written (with ``outputs``)."""
    comparison = None if baseline is None else compare(summary, baseline)
    return write_run_dir(out_dir, lambda staging: _stage(staging, summary, predictions,
                                                         extra or {}, comparison, out_dir,
                                                         report_url),
                         OUTPUT_NAMES)


def rerender_report(run_dir: Path, baseline: tuple[Path, RunRecord] | None = None,
                    report_url: str | None = None) -> Path:
    """``validator report RUN_DIR``: report.html again from summary.json and
    predictions.parquet, read and verified by ``RunDir`` (hashes and verdicts), without
    scoring, and summary.md and junit.xml with it (so the three always agree), with the
    comparison against a baseline run and the ``report_url`` link when given. A
    confirmed plan that ``validator recommend`` wrote beside the run (routing.yaml)
    enters the decision."""
    run = RunDir.read(run_dir)
    summary, predictions = run.record, run.table
    target = run_dir / "report.html"
    comparison = None if baseline is None else compare(summary, baseline)
    plan = read_plan(run_dir, summary, predictions)
    write_text(target, render_html(summary, predictions, comparison, plan, run_dir=run_dir,
                                   **after_sections(run_dir)))
    write_text(run_dir / "summary.md", render_markdown(summary, comparison, run_dir,
                                                       report_url))
    write_text(run_dir / "junit.xml", render_junit(summary))
    return target
