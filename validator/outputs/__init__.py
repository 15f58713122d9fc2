"""Render a run's outputs: summary.json, predictions.parquet, junit.xml, summary.md,
report.html, and any extra files of the run (discovery's slice file), written as one
run directory by validator.record.write (complete or absent: a failure while writing
any of them, say report.html, leaves no summary.json behind).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from validator.errors import ValidatorError
from validator.outputs.baseline import Comparison, compare
from validator.outputs.advice import read_plan
from validator.outputs.after_sections import after_sections
from validator.outputs.html import render_html
from validator.outputs.junit import render_junit
from validator.outputs.markdown import render_markdown
from validator.record.schema import RunRecord, read_record
from validator.record.write import write_run_dir, write_text

RENDERERS: dict[str, Callable[[RunRecord, Comparison | None], str]] = {
    "junit.xml": lambda summary, comparison: render_junit(summary),
    "summary.md": render_markdown,
}


OUTPUT_NAMES = ("summary.json", "predictions.parquet", *RENDERERS, "report.html")


def _stage(staging: Path, summary: RunRecord, predictions: pd.DataFrame,
           extra: dict[str, str], comparison: Comparison | None) -> None:
    predictions.to_parquet(staging / "predictions.parquet", index=False)
    for name, text in extra.items():
        (staging / name).write_text(text, encoding="utf-8")
    (staging / "summary.json").write_text(summary.to_json(), encoding="utf-8")
    for name, render in RENDERERS.items():
        (staging / name).write_text(render(summary, comparison), encoding="utf-8")
    (staging / "report.html").write_text(render_html(summary, predictions, comparison),
                                         encoding="utf-8")


def write_outputs(out_dir: Path, summary: RunRecord, predictions: pd.DataFrame,
                  extra: dict[str, str] | None = None,
                  baseline: tuple[Path, RunRecord] | None = None) -> list[Path]:
    """The run's five outputs, and ``extra`` files (name -> text), into ``out_dir`` at
    once; with a baseline run (its folder and record), report.html and summary.md also
    say what changed since it."""
    comparison = None if baseline is None else compare(summary, baseline)
    write_run_dir(out_dir, lambda staging: _stage(staging, summary, predictions, extra or {},
                                                   comparison), OUTPUT_NAMES)
    return [out_dir / name for name in (*OUTPUT_NAMES, *(extra or {}))]


def rerender_report(run_dir: Path, baseline: tuple[Path, RunRecord] | None = None) -> Path:
    """``validator report RUN_DIR``: report.html again from summary.json (validated
    against the run record) and predictions.parquet, without scoring. With a baseline
    run, summary.md is rendered again too, both with the comparison. A confirmed plan
    that ``validator recommend`` wrote beside the run (routing.yaml) enters the
    decision."""
    summary_path, table_path = run_dir / "summary.json", run_dir / "predictions.parquet"
    for path in (summary_path, table_path):
        if not path.is_file():
            raise ValidatorError(f"{path}: not found; is {run_dir} a run directory?")
    summary = read_record(summary_path)
    try:
        predictions = pd.read_parquet(table_path)
    except (ValueError, OSError) as exc:
        raise ValidatorError(f"{table_path}: cannot read the predictions ({exc})") from exc
    target = run_dir / "report.html"
    comparison = None if baseline is None else compare(summary, baseline)
    plan = read_plan(run_dir, summary, predictions)
    write_text(target, render_html(summary, predictions, comparison, plan,
                                   **after_sections(run_dir)))
    if comparison is not None:
        write_text(run_dir / "summary.md", render_markdown(summary, comparison))
    return target
