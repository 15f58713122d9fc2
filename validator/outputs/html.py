"""report.html: one self-contained page (jinja2, autoescaped, inline CSS/JS/SVG, no
network) rendered from the summary and the predictions table (and, with --baseline,
the comparison with an earlier run's summary).

The template puts the decision first (first_screen, decision: one card per candidate
and the provenance line), then the heatmaps (coloured by verdict), the checks grouped
by verdict, the forest plots per failing dimension, examples and every detail section
in a <details> element, and a glossary the terms link to. It fits 1280 and 390 px
without a box to scroll sideways (tables turn into cards on narrow screens) and prints
to A4. A feature adding a section writes its own partial (templates/_name.html.j2) and
one guarded {% include %} line in report.html.j2."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from validator.outputs import advice, discovery_view, first_screen, glossary, majority
from validator.outputs import report_view as view
from validator.outputs.baseline import Comparison
from validator.outputs.formats import (count, interval, megabytes, num, points, pvalue,
                                       seconds, unit_short)
from validator.outputs.formats import guard_suffix, threshold
from validator.outputs.power import power_lines
from validator.record.schema import CheckRecord, RunRecord


ARGUMENT_CHARS = 80  # a data check's arguments beyond this are cut (summary.json has all)


def arguments(kwargs: dict) -> str:
    """A data check's arguments but the column (a column of its own), shortened."""
    text = json.dumps({k: v for k, v in kwargs.items() if k != "column"}, ensure_ascii=False)
    return text if len(text) <= ARGUMENT_CHARS else text[:ARGUMENT_CHARS - 1] + "…"


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
    env.filters.update(num=num, mb=megabytes, count=count, pvalue=pvalue, points=points,
                       seconds=seconds, short=unit_short, arguments=arguments)
    env.globals.update(interval=interval, term=glossary.anchor, guard_suffix=guard_suffix,
                       threshold=threshold)
    return env


def _checks_by_verdict(summary: RunRecord) -> list[tuple[str, list[CheckRecord]]]:
    ordered = first_screen.report_order(summary.checks)
    return [(v, [c for c in ordered if c.verdict == v])
            for v in ("fail", "inconclusive", "pass")]


def render_html(summary: RunRecord, predictions: pd.DataFrame | None = None,
                comparison: Comparison | None = None,
                plan: advice.Plan | None = None, run_dir: Path | None = None,
                **sections) -> str:
    """``sections``: extra template variables (after_sections.after_sections)."""
    checks = {(c.candidate, c.slice, c.dimension): c for c in summary.gate_checks}
    blind = majority.blind_spots(summary)
    baseline = majority.values_of(summary, majority.MAJORITY, summary.gate.metric)
    decisions = advice.decisions(summary, plan)
    baseline_dir = first_screen.run_path(Path(comparison.run_dir)) if comparison else None
    return environment().get_template("report.html.j2").render(
        summary=summary, plain=view.plain_summary(summary), grid=degradation_grid(summary),
        cards=first_screen.cards(summary, decisions, run_dir),
        provenance=first_screen.provenance(summary, baseline_dir),
        under_load=first_screen.under_load(summary),
        operating=view.operating_sentence(summary), percent=view.percent,
        dimensions=[*summary.rubric.dimensions, "_all"],
        slice_rows={s.name: s.rows for s in summary.slices},
        forests=view.forests(summary), by_verdict=_checks_by_verdict(summary),
        check_of=lambda scorer, slice_name, dimension: checks.get((scorer, slice_name,
                                                                   dimension)),
        anchor=view.check_anchor, colour=view.heat_colour,
        examples=view.examples(summary, predictions),
        examples_per_slice=view.EXAMPLES_PER_SLICE,
        strip=advice.strip(summary),
        headline=advice.headline(summary, baseline),
        majority_of=lambda slice_name, dimension: baseline.get((slice_name, dimension)),
        agreement_metrics=majority.AGREEMENT_METRICS, barely=majority.BARELY_BEATS,
        power=power_lines(summary), blind=blind, blind_sentence=majority.blind_sentence(summary, blind),
        suggested=majority.SUGGESTED, comparison=comparison, terms=glossary.TERMS,
        discovery=discovery_view.section(summary, predictions), **sections)
