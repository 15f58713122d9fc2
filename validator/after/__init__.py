"""Decisions taken after the verdict, from a run directory (no re-scoring)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from validator.errors import ValidatorError


def read_run_files(run_dir: Path) -> tuple[dict, pd.DataFrame]:
    """A finished run's summary.json (plain data) and predictions.parquet; exit 2 naming
    the file when either is missing or unreadable."""
    summary_path, table_path = run_dir / "summary.json", run_dir / "predictions.parquet"
    for path in (summary_path, table_path):
        if not path.is_file():
            raise ValidatorError(f"{path}: not found; is {run_dir} a run directory?")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        table = pd.read_parquet(table_path)
    except (ValueError, OSError) as exc:
        raise ValidatorError(f"{run_dir}: cannot read the run ({exc})") from exc
    return summary, table
