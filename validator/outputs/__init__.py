"""Write a run's outputs: summary.json, predictions.parquet, junit.xml, summary.md,
report.html. Each file is written to a temporary name and renamed into place, so a
reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd

from validator.outputs.html import render_html
from validator.outputs.junit import render_junit
from validator.outputs.markdown import render_markdown
from validator.record import RunRecord, read_record

RENDERERS: dict[str, Callable[[RunRecord], str]] = {
    "junit.xml": render_junit,
    "summary.md": render_markdown,
}


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; outputs are for sharing
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_outputs(out_dir: Path, summary: RunRecord, predictions: pd.DataFrame) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_dir / "predictions.parquet",
                  lambda p: predictions.to_parquet(p, index=False))
    write_text(out_dir / "summary.json", summary.to_json())
    for name, render in RENDERERS.items():
        write_text(out_dir / name, render(summary))
    write_text(out_dir / "report.html", render_html(summary, predictions))
    return [out_dir / name
            for name in ("summary.json", "predictions.parquet", *RENDERERS, "report.html")]


def rerender_report(run_dir: Path) -> Path:
    """``validator report RUN_DIR``: report.html again from summary.json (validated
    against the run record) and predictions.parquet, without scoring."""
    from validator.errors import ValidatorError

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
    write_text(target, render_html(summary, predictions))
    return target
