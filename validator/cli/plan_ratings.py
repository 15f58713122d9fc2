"""``validator plan-ratings``: which unrated pool rows to send to raters."""

from __future__ import annotations

from pathlib import Path

import typer

from validator.cli.options import DEBUG, RUN_DIR, guarded, out_option


def plan_ratings(
    run_dir: Path = RUN_DIR,
    budget: int = typer.Option(..., "--budget", "-n", help="How many pool rows to rate."),
    out: Path = out_option("PLAN.csv to write (PLAN.summary.json goes beside it).", ...),
    seed: int = typer.Option(0, "--seed", help="Seed of the selection (same seed, same plan)."),
    debug: bool = DEBUG,
) -> None:
    """Choose which unrated pool rows to send to raters, from predictions only: most of
    the budget where the candidates' predictions differ from the reference's, a floor
    per slice and a uniform share. States per slice the smallest degradation the plan can
    rule out before any rating is spent.

    Example: validator plan-ratings reports/run-20261127-101500 --budget 3000 --out PLAN.csv

    Rate the rows with phase to_rate, add the ratings to the sample, and run again with
    sample.rating_plan: PLAN.csv. Exit 0 when written, 2 when it could not plan.
    """
    from validator.after.plan_ratings import make_plan, power_table, write_plan

    with guarded(debug):
        rows, record = make_plan(run_dir, budget, seed)
        written = write_plan(rows, record, out)
        typer.echo(power_table(record), nl=False)
        typer.echo(f"wrote {out} ({budget} rows to rate, phase to_rate) and {written}")
