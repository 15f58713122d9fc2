"""Write a run's outputs: summary.json, predictions.parquet, junit.xml, summary.md,
report.html, and any extra files of the run (discovery's slice file). They are written
into a temporary sibling folder that is renamed into place only once all exist, so a
run directory is either complete or absent: a failure while writing any of them (say
report.html) leaves no summary.json behind. summary.json records the sha256 of every
other output (``outputs``), and the folder's manifest (``ownership``) every file the
tool wrote there: a run never deletes or replaces a file it did not write, and holds
the folder's lock until its outputs are in place.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd

from validator.outputs.baseline import Comparison, compare
from validator.outputs.decision import read_plan
from validator.outputs.html import render_html
from validator.outputs.junit import render_junit
from validator.outputs.markdown import render_markdown
from validator.record.ownership import claim, file_sha256, foreign_files, write_manifest
from validator.record.schema import RunRecord

RENDERERS: dict[str, Callable[[RunRecord, Comparison | None], str]] = {
    "junit.xml": lambda summary, comparison: render_junit(summary),
    "summary.md": render_markdown,
}


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
    claim([path])


def write_text(path: Path, text: str) -> None:
    """Write atomically; in a run folder, the file joins the folder's manifest."""
    _atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


OUTPUT_NAMES = ("summary.json", "predictions.parquet", *RENDERERS, "report.html")


def _stage(staging: Path, summary: RunRecord, predictions: pd.DataFrame,
           extra: dict[str, str], comparison: Comparison | None) -> RunRecord:
    """Every output into ``staging``; summary.json last, with the others' sha256."""
    predictions.to_parquet(staging / "predictions.parquet", index=False)
    for name, text in extra.items():
        (staging / name).write_text(text, encoding="utf-8")
    for name, render in RENDERERS.items():
        (staging / name).write_text(render(summary, comparison), encoding="utf-8")
    (staging / "report.html").write_text(render_html(summary, predictions, comparison),
                                         encoding="utf-8")
    summary = summary.model_copy(update={"outputs": {
        p.name: file_sha256(p) for p in sorted(staging.iterdir()) if p.is_file()}})
    (staging / "summary.json").write_text(summary.to_json(), encoding="utf-8")
    missing = [name for name in OUTPUT_NAMES if not (staging / name).is_file()]
    if missing:
        raise OSError(f"{staging}: {', '.join(missing)} not written")
    write_manifest(staging, {p.name: file_sha256(p) for p in staging.iterdir() if p.is_file()})
    return summary


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename the staged run to ``out_dir``. A previous run there (``--force``, checked
    by ``ownership.check_out_dir``) is set aside; its own files (listed in its manifest
    and unchanged) are removed, any other entry moves into the new run, or, when the
    new run wrote the same name, stays set aside and the run says where."""
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        os.replace(staging, out_dir)  # atomic, also onto an empty folder
        return
    previous = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.replaced-", dir=out_dir.parent))
    os.replace(out_dir, previous / "run")
    os.replace(staging, out_dir)
    foreign = set(foreign_files(previous / "run"))
    for entry in (previous / "run").iterdir():
        if entry.name not in foreign:
            entry.unlink()
        elif not (out_dir / entry.name).exists():
            os.replace(entry, out_dir / entry.name)
    kept = sorted(p.name for p in (previous / "run").iterdir())
    if kept:
        print(f"note: kept {', '.join(kept)} of the replaced folder in {previous / 'run'} "
              f"(not written by this tool)", file=sys.stderr)
        return
    shutil.rmtree(previous)


def write_outputs(out_dir: Path, summary: RunRecord, predictions: pd.DataFrame,
                  extra: dict[str, str] | None = None,
                  baseline: tuple[Path, RunRecord] | None = None) -> RunRecord:
    """The run's five outputs, and ``extra`` files (name -> text), into ``out_dir`` at
    once; with a baseline run (its folder and record), report.html and summary.md also
    say what changed since it. Returns the record as written (with ``outputs``)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        _shareable(staging, 0o777)
        comparison = None if baseline is None else compare(summary, baseline)
        summary = _stage(staging, summary, predictions, extra or {}, comparison)
        _move_into_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def rerender_report(run_dir: Path, baseline: tuple[Path, RunRecord] | None = None) -> Path:
    """``validator report RUN_DIR``: report.html again from summary.json and
    predictions.parquet, read and verified by ``RunDir`` (hashes and verdicts), without
    scoring. With a baseline run, summary.md is rendered again too, both with the
    comparison. A confirmed plan that ``validator recommend`` wrote beside the run
    (routing.yaml) enters the decision."""
    from validator.outputs.decision_view import decision_sections
    from validator.record.run_dir import RunDir

    run = RunDir.read(run_dir)
    summary, predictions = run.record, run.table
    target = run_dir / "report.html"
    comparison = None if baseline is None else compare(summary, baseline)
    plan = read_plan(run_dir, summary, predictions)
    write_text(target, render_html(summary, predictions, comparison, plan,
                                   **decision_sections(run_dir)))
    if comparison is not None:
        write_text(run_dir / "summary.md", render_markdown(summary, comparison))
    return target
