"""``validator report``: render report.html (and summary.md, junit.xml) again from a run
directory."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from validator.cli.options import DEBUG, REPORT_URL, RUN_DIR, guarded


def report(
    run_dir: Path = RUN_DIR,
    baseline: Optional[Path] = typer.Option(None, "--baseline",
                                            help="An earlier run directory to compare with "
                                                 "(report.html and summary.md say what "
                                                 "changed)."),
    report_url: Optional[str] = REPORT_URL,
    debug: bool = DEBUG,
) -> None:
    """Re-render report.html (and summary.md, junit.xml) from a run's summary.json and
    predictions.parquet, without scoring anything. The run is verified first
    (docs/trust.md): a hand-edited or truncated summary.json, a file whose sha256
    differs from the one the run recorded, or a stored verdict the gate's rules do not
    give for its numbers exits 2 naming the file and field. With --baseline,
    report.html and summary.md add what changed since that run: checks that newly fail,
    newly pass or moved beyond their CI, and whether the sample and slice definitions
    differ.

    Example: validator report reports/run-20261127-101500 --baseline reports/release-41
    --report-url https://ci.example.com/artifacts/42/report.html
    """
    from validator.outputs import rerender_report
    from validator.outputs.baseline import read_baseline

    with guarded(debug):
        earlier = read_baseline(baseline) if baseline else None
        typer.echo(f"report: {rerender_report(run_dir, earlier, report_url)}")
