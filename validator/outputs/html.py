"""report.html: one self-contained page (jinja2, autoescaped, inline CSS/JS/SVG, no
network) rendered from the summary and the predictions table (and, with --baseline,
the comparison with an earlier run's summary).

The template puts the decision first (report_view, decision), then the heatmaps, the
checks that fail, the forest plots, and every detail section in a <details> element.
A feature adding a section writes its own partial (templates/_name.html.j2) and one
guarded {% include %} line in report.html.j2."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from validator.outputs import advice, discovery_view, majority
from validator.outputs import report_view as view
from validator.outputs.baseline import Comparison
from validator.outputs.junit import guard_suffix, threshold
from validator.outputs.power import power_lines
from validator.record.schema import CheckRecord, RunRecord


def num(value, digits: int = 2, suffix: str = "") -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}{suffix}"


def megabytes(value) -> str:
    return num(None if value is None else value / 1e6, 1)


def degradation_grid(summary: RunRecord) -> dict[str, dict[str, dict[str, CheckRecord]]]:
    """candidate -> slice -> dimension -> check, in the summary's order."""
    grid: dict = defaultdict(lambda: defaultdict(dict))
    for check in summary.gate_checks:
        grid[check.candidate][check.slice][check.dimension] = check
    return grid


def environment() -> Environment:
    env = Environment(loader=PackageLoader("validator.outputs", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=num, mb=megabytes)
    env.globals.update(guard_suffix=guard_suffix, threshold=threshold)
    return env


def render_html(summary: RunRecord, predictions: pd.DataFrame | None = None,
                comparison: Comparison | None = None,
                plan: advice.Plan | None = None, **sections) -> str:
    """``sections``: extra template variables (after_sections.after_sections)."""
    grid = degradation_grid(summary)
    checks = {(c.candidate, c.slice, c.dimension): c for c in summary.gate_checks}
    problems = view.problems(summary)
    metric_names = list(dict.fromkeys(m.metric for m in summary.metrics))
    blind = majority.blind_spots(summary)
    baseline = majority.values_of(summary, majority.MAJORITY, summary.gate.metric)
    return environment().get_template("report.html.j2").render(
        summary=summary, plain=view.plain_summary(summary), grid=grid, problems=problems,
        operating=view.operating_sentence(summary), percent=view.percent,
        dimensions=[*summary.rubric.dimensions, "_all"],
        slice_rows={s.name: s.rows for s in summary.slices},
        forests={name: view.forest(summary, name) for name in grid},
        tables=view.slice_tables(summary), metric_names=metric_names,
        check_of=lambda scorer, slice_name, dimension: checks.get((scorer, slice_name,
                                                                   dimension)),
        anchor=view.check_anchor, colour=view.heat_colour,
        examples=view.examples(summary, predictions),
        examples_per_slice=view.EXAMPLES_PER_SLICE,
        decisions=advice.decisions(summary, plan), strip=advice.strip(summary),
        headline=advice.headline(summary, baseline), top=view.top_failures(summary),
        majority_of=lambda slice_name, dimension: baseline.get((slice_name, dimension)),
        agreement_metrics=majority.AGREEMENT_METRICS, barely=majority.BARELY_BEATS,
        power=power_lines(summary),
        blind=blind, blind_sentence=majority.blind_sentence(summary, blind),
        suggested=majority.SUGGESTED, comparison=comparison,
        recommend=advice.RECOMMEND,
        discovery=discovery_view.section(summary, predictions), **sections)
