"""``validator run``: score the sample, gate every slice, write the run directory."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from validator.cli.options import (DEBUG, QUIET, REPORT_URL, guarded, out_option,
                                   rich_progress)


def default_out_dir(base: Path) -> Path:
    return base / datetime.now().strftime("run-%Y%m%d-%H%M%S")


def run(
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="Config YAML (schema v1). Default: the embedded "
                                               "default (shipped sample and slice pack, "
                                               "default scorer and its INT8 twins)."),
    out: Optional[Path] = out_option("Run directory for the outputs. Default: "
                                     "report.out/run-YYYYmmdd-HHMMSS."),
    force: bool = typer.Option(False, "--force",
                               help="Replace the run in an --out folder that already "
                                    "holds one and only its files (the old run stays "
                                    "until the new one is complete; a folder with other "
                                    "files is refused)."),
    no_cache: bool = typer.Option(False, "--no-cache",
                                  help="Neither read nor write cached predictions; build "
                                       "recipe artefacts afresh."),
    baseline: Optional[Path] = typer.Option(None, "--baseline",
                                            help="An earlier run directory (the last "
                                                 "release) to compare with: the report and "
                                                 "summary.md add the checks that newly fail, "
                                                 "newly pass or moved beyond their CI."),
    report_url: Optional[str] = REPORT_URL,
    quiet: bool = QUIET,
    debug: bool = DEBUG,
) -> None:
    """Score the sample with the reference and candidates and gate every slice.

    Example: validator run --config gate.yaml --out reports/release-42
    --report-url https://ci.example.com/artifacts/42/report.html

    Exit 0: gate passed. 1: gate failed (or inconclusive). 2: could not run.
    """
    from validator.cache_check import describe as describe_cache_check
    from validator.config import default_config, load_config
    from validator.outputs.baseline import read_baseline
    from validator.outputs.power import power_lines
    from validator.pipeline import run_gate

    with guarded(debug):
        earlier = read_baseline(baseline) if baseline else None  # before any scoring
        cfg = load_config(config) if config else default_config()
        out_dir = out or default_out_dir(cfg.report.out)
        summary = run_gate(cfg, out_dir, rich_progress(quiet), use_cache=not no_cache,
                           baseline=earlier, force=force, report_url=report_url)
        counts = summary.counts
        for warning in summary.warnings:
            typer.echo(f"warning: {warning}", err=True)
        for scorer in summary.scorers:
            if scorer.cache_check is not None:
                typer.echo(describe_cache_check(scorer.name, scorer.cache_check))
        typer.echo(f"verdict: {summary.verdict.upper()}  ({counts.fail} failed, "
                   f"{counts.inconclusive} inconclusive, {counts.passed} passed checks)")
        if summary.cpu is not None and summary.cpu.reason:
            typer.echo(f"inconclusive: {summary.cpu.reason}")
        for line in power_lines(summary):
            typer.echo(f"power: {line}")
        typer.echo(f"report: {out_dir / 'report.html'}")
        raise typer.Exit(summary.exit_code)
