"""``validator diagnose`` (which layers a failing slice is sensitive to) and
``validator repair`` (keep the most sensitive layers in fp32 until the gate passes)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from validator.cli.options import DEBUG, QUIET, RUN_DIR, guarded, rich_progress
from validator.errors import ValidatorError

# the options both commands take, declared once (and RUN_DIR, shared by every command
# that reads a run directory)
CANDIDATE = typer.Option(..., "--candidate", help="An INT8 recipe candidate of the run "
                                                  "(onnx-int8-static or torch-int8-dynamic).")
PROBE_ROWS = typer.Option(64, "--rows", min=4,
                          help="Slice rows the library tools probe per slice.")


def check_by(by: str) -> None:
    if by not in ("block", "node"):
        raise ValidatorError(f"--by: must be block or node, got {by!r}")


def diagnose(
    run_dir: Path = RUN_DIR,
    candidate: str = CANDIDATE,
    slice_name: Optional[list[str]] = typer.Option(None, "--slice",
                                                   help="Slice to diagnose (repeatable; "
                                                        "default: the failing slices)."),
    top: int = typer.Option(8, "--top", min=1,
                            help="Layers or blocks (lowest SQNR first) each kept in fp32 "
                                 "and re-scored per slice."),
    rows: int = PROBE_ROWS,
    by: str = typer.Option("block", "--by",
                           help="block: the layers of each block (encoder layer, "
                                "embeddings, head) together; node: every layer alone."),
    max_rows: Optional[int] = typer.Option(None, "--max-rows", min=10,
                                           help="Rows of each slice scored per unit kept "
                                                "in fp32 (a seeded draw; default: all)."),
    quiet: bool = QUIET,
    debug: bool = DEBUG,
) -> None:
    """Rank the layers a failing slice is sensitive to: per-layer SQNR from the
    quantization library's own tools on the slice's rows, then the change in the
    slice's degradation when each top layer alone is kept in fp32.

    Example: validator diagnose reports/run-20261127-101500 --candidate onnx-int8-static

    Writes RUN_DIR/diagnose-NAME.json and .md and adds a section to report.html.
    Exit 0 when it ran, 2 when it could not.
    """
    from validator.after.diagnose import diagnose as rank_layers
    from validator.after.diagnose import markdown, write_diagnosis
    from validator.after.rebuild import open_workbench
    from validator.outputs import rerender_report

    with guarded(debug):
        bench = open_workbench(run_dir, candidate, rich_progress(quiet))
        check_by(by)
        record = rank_layers(bench, slice_name or None, top, rows, by, max_rows)
        written = write_diagnosis(run_dir, record)
        report = rerender_report(run_dir)
        typer.echo(markdown(record, limit=5), nl=False)
        typer.echo(f"wrote: {written[0]}, {written[1]}; report: {report}")


def repair(
    run_dir: Path = RUN_DIR,
    candidate: str = CANDIDATE,
    budget: int = typer.Option(4, "--budget", min=1,
                               help="Most layers or blocks kept in fp32."),
    max_size_mb: Optional[float] = typer.Option(None, "--max-size-mb", min=0,
                                                help="Stop before a step whose model is "
                                                     "larger on disk than this (MB)."),
    max_latency_ms: Optional[float] = typer.Option(None, "--max-latency-ms", min=0,
                                                   help="Stop before a step whose batch-1 "
                                                        "p50 latency (in process, on the "
                                                        "run's probe rows) exceeds this."),
    by: str = typer.Option("block", "--by",
                           help="block (encoder layer, embeddings, head) or node."),
    top: int = typer.Option(8, "--top", min=1,
                            help="Units diagnose measures per failing slice."),
    rows: int = PROBE_ROWS,
    quiet: bool = QUIET,
    debug: bool = DEBUG,
) -> None:
    """Search the mixed-precision candidate that passes the gate: keep the most
    slice-sensitive layers in fp32 one step at a time, re-gating on a search half of
    the gate rows, and confirm the best step on the other half.

    Example: validator repair reports/run-1 --candidate onnx-int8-static --max-size-mb 40

    Writes RUN_DIR/repair-NAME.json, .md (the step table) and .candidate.yaml (the
    recipe config). Exit 0: confirmed without failing checks. 1: no step passes on the
    confirmation half. 2: could not run.
    """
    from validator.after import repair as search
    from validator.after.rebuild import open_workbench
    from validator.outputs import rerender_report

    with guarded(debug):
        check_by(by)
        bench = open_workbench(run_dir, candidate, rich_progress(quiet))
        record = search.repair(bench, search.Budget(budget, max_size_mb, max_latency_ms),
                               top, rows, by)
        written = search.write_repair(run_dir, record)
        report = rerender_report(run_dir)
        typer.echo(search.step_table(record) + search.summary_lines(record), nl=False)
        typer.echo(f"wrote: {', '.join(map(str, written))}; report: {report}")
        if record["confirmation"]["verdict"] != "pass":
            raise typer.Exit(1)
