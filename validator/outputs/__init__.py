"""Write a run's outputs: summary.json, predictions.parquet, junit.xml, summary.md,
report.html, and any extra files of the run (discovery's slice file). They are written
into a temporary sibling folder that is renamed into place only once all exist, so a
run directory is either complete or absent: a failure while writing any of them (say
report.html) leaves no summary.json behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd

from validator.errors import ValidatorError
from validator.outputs.baseline import Comparison, compare
from validator.outputs.decision import read_plan
from validator.outputs.html import render_html
from validator.outputs.junit import render_junit
from validator.outputs.markdown import render_markdown
from validator.record.schema import RunRecord, read_record

RENDERERS = ("junit.xml", "summary.md")


def _shareable(path: str | Path, mode: int) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)  # mkstemp/mkdtemp make 0600/0700; outputs are for sharing


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    _shareable(temporary, 0o666)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


OUTPUT_NAMES = ("summary.json", "predictions.parquet", *RENDERERS, "report.html")


def _stage(staging: Path, summary: RunRecord, predictions: pd.DataFrame,
           extra: dict[str, str], comparison: Comparison | None, out_dir: Path,
           report_url: str | None) -> None:
    predictions.to_parquet(staging / "predictions.parquet", index=False)
    for name, text in extra.items():
        (staging / name).write_text(text, encoding="utf-8")
    (staging / "summary.json").write_text(summary.to_json(), encoding="utf-8")
    (staging / "junit.xml").write_text(render_junit(summary), encoding="utf-8")
    (staging / "summary.md").write_text(render_markdown(summary, comparison, out_dir,
                                                        report_url), encoding="utf-8")
    (staging / "report.html").write_text(render_html(summary, predictions, comparison,
                                                     run_dir=out_dir), encoding="utf-8")
    missing = [name for name in OUTPUT_NAMES if not (staging / name).is_file()]
    if missing:
        raise OSError(f"{staging}: {', '.join(missing)} not written")


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename the staged run to ``out_dir``. A folder already there (``--force``) is set
    aside and its entries that are not run outputs, nor written anew, are moved into
    the new run."""
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        os.replace(staging, out_dir)  # atomic, also onto an empty folder
        return
    previous = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.replaced-", dir=out_dir.parent))
    os.replace(out_dir, previous / "run")
    os.replace(staging, out_dir)
    for entry in (previous / "run").iterdir():
        if entry.name not in OUTPUT_NAMES and not (out_dir / entry.name).exists():
            os.replace(entry, out_dir / entry.name)
    shutil.rmtree(previous, ignore_errors=True)


def write_outputs(out_dir: Path, summary: RunRecord, predictions: pd.DataFrame,
                  extra: dict[str, str] | None = None,
                  baseline: tuple[Path, RunRecord] | None = None,
                  report_url: str | None = None) -> list[Path]:
    """The run's five outputs, and ``extra`` files (name -> text), into ``out_dir`` at
    once; with a baseline run (its folder and record), report.html and summary.md also
    say what changed since it. ``report_url``: where CI publishes report.html (the
    link line of summary.md; default the relative report.html)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValidatorError(f"{out_dir}: exists and is not a folder; choose another --out")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        _shareable(staging, 0o777)
        comparison = None if baseline is None else compare(summary, baseline)
        _stage(staging, summary, predictions, extra or {}, comparison, out_dir, report_url)
        _move_into_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out_dir / name for name in (*OUTPUT_NAMES, *(extra or {}))]


def rerender_report(run_dir: Path, baseline: tuple[Path, RunRecord] | None = None,
                    report_url: str | None = None) -> Path:
    """``validator report RUN_DIR``: report.html again from summary.json (validated
    against the run record) and predictions.parquet, without scoring, and summary.md
    and junit.xml with it (so the three always agree), with the comparison against a
    baseline run and the ``report_url`` link when given. A confirmed plan that
    ``validator recommend`` wrote beside the run (routing.yaml) enters the decision."""
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
    from validator.outputs.decision_view import decision_sections

    comparison = None if baseline is None else compare(summary, baseline)
    plan = read_plan(run_dir, summary, predictions)
    write_text(target, render_html(summary, predictions, comparison, plan, run_dir=run_dir,
                                   **decision_sections(run_dir)))
    write_text(run_dir / "summary.md", render_markdown(summary, comparison, run_dir,
                                                       report_url))
    write_text(run_dir / "junit.xml", render_junit(summary))
    return target
