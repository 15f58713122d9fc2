"""The command line: parse arguments, call the orchestrator, print, map outcomes to
exit codes (0 gate passed, 1 gate failed or inconclusive, 2 could not run)."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from validator.errors import ValidatorError
from validator.scorers import recipes_that

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  no_args_is_help=True)
slices_app = typer.Typer(help="Work with slice definition files.\n\n"
                              "Example: validator slices check slices/",
                         no_args_is_help=True)
app.add_typer(slices_app, name="slices")

EXIT_COULD_NOT_RUN = 2


def show_version(value: bool) -> None:
    if value:
        from validator import __version__

        typer.echo(f"slice-validator {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=show_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """A release gate for quantized text scorers, slice by slice.

    Example: validator run --config gate.yaml
    """


def fail(message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_COULD_NOT_RUN)


@contextlib.contextmanager
def guarded(debug: bool):
    """Map every failure to one line and exit 2; never a traceback unless --debug."""
    try:
        yield
    except typer.Exit:
        raise
    except ValidatorError as exc:
        fail(str(exc), debug)
    except KeyboardInterrupt:
        fail("interrupted", debug)
    except MemoryError:
        fail("out of memory; try a smaller batch_size or sample", debug)
    except Exception as exc:  # fail closed: an unexpected error is still exit 2
        fail(f"internal error: {exc.__class__.__name__}: {exc} (rerun with --debug)", debug)


def rich_progress(quiet: bool):
    """A progress factory drawing bars on stderr, or a silent one."""
    from validator.scorers import no_progress

    if quiet:
        return no_progress
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    @contextlib.contextmanager
    def factory(description: str, total: int):
        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)

    return factory


def default_out_dir(base: Path) -> Path:
    return base / datetime.now().strftime("run-%Y%m%d-%H%M%S")


@app.command()
def run(
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="Config YAML (schema v1). Default: the embedded "
                                               "default (shipped sample and slice pack, "
                                               "default scorer and its INT8 twins)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Run directory for the outputs. Default: "
                                            "report.out/run-YYYYmmdd-HHMMSS."),
    force: bool = typer.Option(False, "--force",
                               help="Replace the run in an --out folder that already "
                                    "holds one (the old run stays until the new one is "
                                    "complete)."),
    no_cache: bool = typer.Option(False, "--no-cache",
                                  help="Neither read nor write cached predictions; build "
                                       "recipe artefacts afresh."),
    baseline: Optional[Path] = typer.Option(None, "--baseline",
                                            help="An earlier run directory (the last "
                                                 "release) to compare with: the report and "
                                                 "summary.md add the checks that newly fail, "
                                                 "newly pass or moved beyond their CI."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
) -> None:
    """Score the sample with the reference and candidates and gate every slice.

    Example: validator run --config gate.yaml --out reports/release-42

    Exit 0: gate passed. 1: gate failed (or inconclusive). 2: could not run.
    """
    from validator.config import default_config, load_config
    from validator.outputs.baseline import read_baseline
    from validator.pipeline import run_gate

    with guarded(debug):
        earlier = read_baseline(baseline) if baseline else None  # before any scoring
        cfg = load_config(config) if config else default_config()
        out_dir = out or default_out_dir(cfg.report.out)
        if (out_dir / "summary.json").exists() and not force:
            raise ValidatorError(f"{out_dir}: already holds a run; choose another --out or "
                                 f"pass --force to replace it")
        summary = run_gate(cfg, out_dir, rich_progress(quiet), use_cache=not no_cache,
                           baseline=earlier)
        counts = summary.counts
        typer.echo(f"verdict: {summary.verdict.upper()}  ({counts.fail} failed, "
                   f"{counts.inconclusive} inconclusive, {counts.passed} passed checks)")
        if summary.cpu is not None and summary.cpu.reason:
            typer.echo(f"inconclusive: {summary.cpu.reason}")
        typer.echo(f"report: {out_dir / 'report.html'}")
        raise typer.Exit(summary.exit_code)


@app.command()
def quantize(
    recipe: str = typer.Option(..., "--recipe", "-r",
                               help="A recipe that writes an artefact: "
                                    f"{', '.join(recipes_that('writable'))}."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the artefact to."),
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="Config whose reference (and sample, for "
                                               "calibration) to use. Default: the embedded "
                                               "default."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
) -> None:
    """Apply a recipe to the reference and write the artefact you will ship and gate.

    Example: validator quantize --recipe onnx-int8-static --out models/scorer-int8

    Gate the written folder with a candidate {backend: onnxruntime, model: DIR}
    (or {backend: transformers, model: DIR} for torch-bf16 and torch-fp16).
    """
    from validator.config import default_config, load_config
    from validator.export import write_artefact

    with guarded(debug):
        cfg = load_config(config) if config else default_config()
        written = write_artefact(cfg, recipe, out, force, rich_progress(quiet))
        typer.echo(f"wrote {recipe} artefact to {written}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory (summary.json and "
                                             "predictions.parquet)."),
    baseline: Optional[Path] = typer.Option(None, "--baseline",
                                            help="An earlier run directory to compare with "
                                                 "(summary.md is rewritten too)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
) -> None:
    """Re-render report.html from a run's summary.json and predictions.parquet, without
    scoring anything. summary.json is validated first: a hand-edited or truncated file
    exits 2 naming the field. With --baseline, report.html and summary.md add what
    changed since that run: checks that newly fail, newly pass or moved beyond their CI,
    and whether the sample and slice definitions differ.

    Example: validator report reports/run-20261127-101500 --baseline reports/release-41
    """
    from validator.outputs import rerender_report
    from validator.outputs.baseline import read_baseline

    with guarded(debug):
        earlier = read_baseline(baseline) if baseline else None
        typer.echo(f"report: {rerender_report(run_dir, earlier)}")


@app.command()
def init(
    folder: Path = typer.Argument(Path("."), help="Folder for the starter project "
                                                  "(default: the current one)."),
    force: bool = typer.Option(False, "--force", help="Replace starter files that exist."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
) -> None:
    """Write a starter project for your own gate.

    It holds a commented gate.yaml (every config key), slices/, ci/ jobs for GitHub
    Actions and GitLab CI, and the shipped synthetic sample in data/.

    Example: validator init release-gate && validator run --config release-gate/gate.yaml

    Point sample.path and reference.model at your own data and model, then run it.
    Refuses to replace existing files without --force (exit 2).
    """
    from validator.scaffold import write_scaffold

    with guarded(debug):
        for path in write_scaffold(folder, force):
            typer.echo(f"wrote {path}")
        typer.echo(f"next: validator run --config {folder / 'gate.yaml'}")


@app.command()
def recommend(
    run_dir: Path = typer.Argument(..., help="A finished run directory (summary.json and "
                                             "predictions.parquet)."),
    max_fallback_share: float = typer.Option(0.4, "--max-fallback-share",
                                             help="Largest share of traffic that may fall "
                                                  "back to the reference (0-1)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Routing file to write (default: "
                                            "RUN_DIR/routing.yaml); the gate-config snippet "
                                            "and options table are written beside it."),
    route_small: bool = typer.Option(False, "--route-small",
                                     help="Route slices too small to decide (< min_rows) "
                                          "to the reference as a precaution."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
) -> None:
    """Find the cheapest routed deployment that passes the run's gate: which slices fall
    back to the reference, chosen on one half of the gate rows and confirmed on the
    other. Nothing is re-scored.

    Example: validator recommend reports/run-20261127-101500 --max-fallback-share 0.4

    Exit 0: a confirmed plan exists. 1: none within --max-fallback-share. 2: could not run.
    """
    from validator.after import recommend as plan

    with guarded(debug):
        run, options, best = plan.recommend(run_dir, max_fallback_share, route_small)
        written = plan.write_plan(out or run_dir / "routing.yaml", run, options, best,
                                  max_fallback_share)
        typer.echo(plan.options_table(options, max_fallback_share), nl=False)
        small = plan.small_slices(run)
        if small:
            typer.echo(f"too small to decide (< min_rows): {', '.join(small)}"
                       + ("" if route_small else "; --route-small routes them to the "
                                                  "reference"))
        if best is None:
            typer.echo(f"no plan passes within {max_fallback_share:.0%} fallback traffic "
                       f"on both halves; options: {written[0]}")
            raise typer.Exit(1)
        what = best.cost["sentence"] if best.cost else (
            f"{best.candidate} with fallback on {best.share:.1%} of traffic")
        typer.echo(f"recommended: {what}")
        typer.echo(f"wrote: {', '.join(map(str, written))}")


@app.command()
def discover(
    run_dir: Path = typer.Argument(..., help="A run directory (summary.json and "
                                             "predictions.parquet)."),
    candidate: Optional[list[str]] = typer.Option(None, "--candidate",
                                                  help="Candidate to search (repeatable; "
                                                       "default: every candidate)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="YAML file to write (default: "
                                            "RUN_DIR/discovered-slices.yaml); the figures "
                                            "go beside it as .json."),
    label_free: bool = typer.Option(False, "--label-free",
                                    help="Search how often the rounded rating changes, "
                                         "ignoring human ratings (automatic when no row "
                                         "is rated)."),
    dimension: str = typer.Option("_all", "--dimension",
                                  help="One rubric dimension, or _all (pooled)."),
    column: Optional[list[str]] = typer.Option(None, "--column",
                                               help="Sample column to search (repeatable; "
                                                    "default: detected)."),
    max_slices: int = typer.Option(10, help="Groups to confirm per candidate."),
    min_rows: int = typer.Option(30, help="Fewest rows of a group in each half."),
    max_conditions: int = typer.Option(2, help="Conditions per group (1 to 3)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
) -> None:
    """Find slices nobody defined where a candidate loses to its reference, and write
    them as a slice file to review, without scoring anything.

    Example: validator discover reports/run-20261127-101500 --candidate int8-dynamic

    Groups are searched on one half of the rows (hash of the id) and confirmed on the
    other with the gate's statistics; only confirmed ones become slices. Exit 0 when
    it ran, 2 when it could not.
    """
    from validator.config import DiscoveryConfig, parse_options
    from validator.after.discover import YAML_NAME, describe, discover, write_discovery

    with guarded(debug):
        settings = parse_options(DiscoveryConfig, {
            "max_slices": max_slices, "min_rows": min_rows, "max_conditions": max_conditions,
            "label_free": label_free, "columns": column or None})
        record = discover(run_dir, settings, candidate or None, dimension)
        for entry in record["slices"]:
            mark = "confirmed" if entry["confirmed"] else "not confirmed"
            typer.echo(f"{mark:<14} {entry['name']}: {describe(entry, record)}")
        confirmed = sum(entry["confirmed"] for entry in record["slices"])
        written, figures = write_discovery(record, out or run_dir / YAML_NAME)
        typer.echo(f"{confirmed} confirmed of {len(record['slices'])} groups "
                   f"({record['signal']}); wrote {written} and {figures}")


@slices_app.command("check")
def slices_check(
    paths: Optional[list[Path]] = typer.Argument(None, help="Slice files or folders "
                                                            "(default: the shipped slice pack)."),
    sample: Optional[Path] = typer.Option(None, "--sample", "-s",
                                          help="Sample file to count rows in (default: the "
                                               "shipped sample)."),
    text_column: str = typer.Option("text", help="Text column of the sample (for "
                                                 "word_count / char_count)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
) -> None:
    """Validate slice files and print each slice's row count in the sample.

    Example: validator slices check slices/ --sample fixtures/sample.csv
    """
    from validator.config import default_config
    from validator.data.sample import read_table
    from validator.data.slices import assign_slices, load_slices
    from validator.data.slices.dsl import with_derived_columns

    with guarded(debug):
        defaults = default_config()
        frame = read_table(sample or defaults.sample.path)
        if text_column not in frame.columns:
            raise ValidatorError(f"{sample or defaults.sample.path}: missing column "
                                 f"{text_column!r} (--text-column)")
        frame = with_derived_columns(frame, text_column)
        slice_set = load_slices(paths or defaults.slices)
        counts = assign_slices(slice_set, frame).sum()
        width = max(len(name) for name in slice_set.names)
        for definition in slice_set.slices:
            typer.echo(f"{definition.name:<{width}}  {int(counts[definition.name]):>7} rows"
                       f"  {definition.file}")
        typer.echo(f"ok: {len(slice_set.slices) - 1} slices (plus 'all') in {len(frame)} rows")


# diagnose and repair live in their own module (this one stays small); registered here
from validator.cli.layers import diagnose, repair  # noqa: E402

app.command()(diagnose)
app.command()(repair)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    sys.exit(app())
