"""``validator recommend`` (fallback routing) and ``validator discover`` (slices nobody
defined): decisions from a finished run directory, without re-scoring."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from validator.cli.options import DEBUG, RUN_DIR, guarded, out_option


def recommend(
    run_dir: Path = RUN_DIR,
    max_fallback_share: float = typer.Option(0.4, "--max-fallback-share",
                                             help="Largest share of traffic that may fall "
                                                  "back to the reference (0-1)."),
    out: Optional[Path] = out_option("Routing file to write (default: "
                                     "RUN_DIR/routing.yaml); the gate-config snippet and the "
                                     "options table are written beside it."),
    route_small: bool = typer.Option(False, "--route-small",
                                     help="Route slices too small to decide (< min_rows) "
                                          "to the reference as a precaution."),
    debug: bool = DEBUG,
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


def discover(
    run_dir: Path = RUN_DIR,
    candidate: Optional[list[str]] = typer.Option(None, "--candidate",
                                                  help="Candidate to search (repeatable; "
                                                       "default: every candidate)."),
    label_free: bool = typer.Option(False, "--label-free",
                                    help="Search how often the rounded rating changes, "
                                         "ignoring human ratings (automatic when no row "
                                         "is rated)."),
    dimension: str = typer.Option("_all", "--dimension",
                                  help="One rubric dimension, or _all (pooled)."),
    column: Optional[list[str]] = typer.Option(None, "--column",
                                               help="Sample column to search (repeatable; "
                                                    "default: detected)."),
    out: Optional[Path] = out_option("YAML file to write (default: "
                                     "RUN_DIR/discovered-slices.yaml); the figures go "
                                     "beside it as .json."),
    max_slices: int = typer.Option(10, help="Groups to confirm per candidate."),
    min_rows: int = typer.Option(30, help="Fewest rows of a group in each half."),
    max_conditions: int = typer.Option(2, help="Conditions per group (1 to 3)."),
    debug: bool = DEBUG,
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
