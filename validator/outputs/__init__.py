"""Write a run's outputs: summary.json, predictions.parquet, junit.xml, summary.md,
report.html. Each file is written to a temporary name and renamed into place, so a
reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd

from validator.outputs.html import render_html
from validator.outputs.junit import render_junit
from validator.outputs.markdown import render_markdown

RENDERERS: dict[str, Callable[[dict], str]] = {
    "report.html": render_html,
    "junit.xml": render_junit,
    "summary.md": render_markdown,
}


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_outputs(out_dir: Path, summary: dict, predictions: pd.DataFrame) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_dir / "predictions.parquet",
                  lambda p: predictions.to_parquet(p, index=False))
    write_text(out_dir / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False))
    for name, render in RENDERERS.items():
        write_text(out_dir / name, render(summary))
    return [out_dir / name for name in ("summary.json", "predictions.parquet", *RENDERERS)]
