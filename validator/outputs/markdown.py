"""summary.md: the verdict, what to do with each candidate, the run's provenance and
the checks in the report's order (failed, inconclusive, passed: largest lower CI bound
first) in collapsible <details>, for CI job summaries (and, with --baseline, what
changed since the earlier run). Lines stay under 200 characters and paths relative;
a link line points to report.html (or ``--report-url``, a CI artifact's address)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from validator.outputs.baseline import Comparison
from validator.outputs.decision import decisions
from validator.outputs.discovery_view import sentence as discovery_sentence
from validator.outputs.first_screen import (cards, provenance, report_order, run_path,
                                            under_load)
from validator.outputs.formats import count, interval, megabytes, num, points, pvalue
from validator.outputs.glossary import TERMS
from validator.outputs.majority import blind_sentence, blind_spots
from validator.outputs.report_view import operating_sentence
from validator.record.schema import CheckRecord, RunRecord

MAX_ROWS = 50     # checks listed per verdict
WIDTH = 180       # wrap prose here: every line stays under 200 characters


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def wrapped(text: str, first: str = "", rest: str = "") -> list[str]:
    return textwrap.wrap(_cell(text), WIDTH, initial_indent=first, subsequent_indent=rest,
                         break_long_words=True, break_on_hyphens=False) or [first.rstrip()]


def card_lines(summary: RunRecord, run_dir: Path | None) -> list[str]:
    lines = []
    for card in cards(summary, decisions(summary), run_dir, relative=True):
        d = card["decision"]
        lines += wrapped(f"**{d.action.upper()}** {d.sentence}", "- ", "  ")
        if card["failed"] or card["inconclusive"]:
            lines += wrapped(_blocking(card), "  ", "  ")
        if card["next"]:
            lines.append(f"  Next: `{card['next']}`")
    return lines + [""]


def _blocking(card: dict) -> str:
    parts = [f"{card['failed']:,} checks fail"] * bool(card["failed"])
    if card["inconclusive"]:
        parts.append(f"{card['inconclusive']:,} inconclusive ({card['likely']:,} with the CI "
                     f"above max_drop but not significant after correction, "
                     f"{card['underpowered']:,} underpowered), which "
                     f"{'block' if card['blocks'] else 'only warn'}")
    text = "; ".join(parts)
    ratings = card["ratings"]
    if ratings and ratings["rows"]:
        text += (f"; {ratings['within_double']:,} of them would decide with at most twice "
                 f"their rated rows, the most demanding needs about "
                 f"{count(ratings['rows'])} ({ratings['slice']})")
        if ratings["targeted"] is not None:
            text += (f"; a flip-targeted rating plan {count(ratings['targeted'])}, uniform "
                     f"{count(ratings['uniform'])}")
    return text + "."


def check_line(c: CheckRecord, summary: RunRecord) -> list[str]:
    unit, confidence = summary.gate.unit, summary.gate.confidence
    head = (f"**{c.verdict.upper()}** {c.candidate} · {c.slice} · {c.dimension}: "
            f"degradation {points(c.degradation, unit)} "
            f"({interval(c.ci_low, c.ci_high, unit, confidence)}), max_drop "
            f"{points(c.max_drop, unit, 0)}, n = {count(c.n)} rows, adjusted p "
            f"{pvalue(c.p_value_adjusted)}")
    return wrapped(head, "- ", "  ") + wrapped(c.reason, "  ", "  ")


def check_sections(summary: RunRecord) -> list[str]:
    lines = []
    ordered = report_order(summary.checks)
    for verdict, title in (("fail", "Failed"), ("inconclusive", "Inconclusive"),
                           ("pass", "Passed")):
        chosen = [c for c in ordered if c.verdict == verdict]
        if not chosen:
            continue
        lines += ["<details>", f"<summary>{title} checks ({len(chosen):,})</summary>", ""]
        for c in chosen[:MAX_ROWS]:
            lines += check_line(c, summary)
        if len(chosen) > MAX_ROWS:
            lines += ["", f"{len(chosen) - MAX_ROWS:,} more in report.html and summary.json."]
        lines += ["", "</details>", ""]
    return lines


def baseline_lines(comparison: Comparison, limit: int = 30) -> list[str]:
    """Per candidate: the counts of changed checks and the changes, the largest first."""
    lines = ["## Since the baseline", "",
             *wrapped(f"Compared with `{run_path(Path(comparison.run_dir), relative=True)}` "
                      f"(verdict {comparison.verdict.upper()})."), ""]
    for note in comparison.notes:
        lines += wrapped(f"**Not like for like:** {note}.", "- ", "  ")
    for pair in comparison.pairs:
        against = "" if pair.baseline == pair.candidate else f" (against {_cell(pair.baseline)})"
        lines += ["", f"### {_cell(pair.candidate)}{against}", "", f"{pair.counts}.", ""]
        if not pair.changes:
            continue
        lines += ["<details>", f"<summary>{len(pair.changes):,} changed checks</summary>", "",
                  "| change | slice / dimension | before | now | degradation before | now "
                  "| CI now |", "|---|---|---|---|---:|---:|---|"]
        for c in pair.changes[:limit]:
            lines.append(f"| {c.kind} | {_cell(c.slice)} / {_cell(c.dimension)} | "
                         f"{c.before.verdict} | {c.after.verdict} | "
                         f"{num(c.before.degradation)} | {num(c.after.degradation)} | "
                         f"[{num(c.after.ci_low)}, {num(c.after.ci_high)}] |")
        if len(pair.changes) > limit:
            lines.append(f"\n{len(pair.changes) - limit} more in report.html.")
        lines += ["", "</details>"]
    return lines + [""]


def scorer_lines(summary: RunRecord) -> list[str]:
    lines = ["| scorer | role | size (MB) | latency p50 (ms) | speedup (×) | "
             "capacity (requests/s) |", "|---|---|---:|---:|---:|---:|"]
    for s in summary.scorers:
        lines.append(f"| {_cell(s.name)} | {s.role} | {megabytes(s.size_bytes)} | "
                     f"{num(s.latency_ms_p50, 1)} | {num(s.speedup_vs_reference)} | "
                     f"{num(s.capacity_rps, 1)} |")
    loaded = under_load(summary)
    if loaded:
        lines += [""] + wrapped("**Speed provisional:** measured under load (" + ", ".join(
            f"{x['name']} load {x['load']:.1f} on {x['cores']} cores" for x in loaded)
            + "); re-measure on an idle machine with `validator run --no-cache`.")
    return lines


def render_markdown(summary: RunRecord, comparison: Comparison | None = None,
                    run_dir: Path | None = None, report_url: str | None = None) -> str:
    gate, counts, sample = summary.gate, summary.counts, summary.sample
    baseline = run_path(Path(comparison.run_dir), relative=True) if comparison else None
    lines = [f"# slice-validator: {summary.verdict.upper()}", "",
             f"Full report: [report.html]({report_url or 'report.html'})", "",
             *card_lines(summary, run_dir),
             *wrapped(" · ".join(f"{k} {v}".strip()
                                 for k, v in provenance(summary, baseline))), "",
             *wrapped(f"Gate metric {gate.metric} ({gate.unit}), max_drop "
                      f"{gate.max_drop:g}, policy {gate.policy}, {gate.confidence:.0%} paired "
                      f"bootstrap CIs ({gate.bootstrap_resamples:,} resamples), correction "
                      f"{gate.correction} (false-fail budget {gate.false_fail_budget:g}), "
                      f"min_rows {gate.min_rows:,}, on_inconclusive {gate.on_inconclusive}. "
                      f"Sample `{Path(sample.path.replace(chr(92), '/')).name}`: "
                      f"{sample.rows:,} gate rows of {sample.total_rows:,}."), "",
             f"Checks: {counts.fail:,} failed, {counts.inconclusive:,} inconclusive, "
             f"{counts.passed:,} passed.", ""]
    blind = blind_sentence(summary, blind_spots(summary))
    for extra in (operating_sentence(summary), blind and f"**Warning:** {blind}",
                  summary.discovery is not None and discovery_sentence(summary)):
        if extra:
            lines += wrapped(extra) + [""]
    if comparison is not None:
        lines += baseline_lines(comparison)
    lines += ["## Checks", "", *check_sections(summary), "## Scorers", "",
              *scorer_lines(summary), "", "<details>", "<summary>Terms</summary>", ""]
    lines += [line for term, text in TERMS.items() for line in
              wrapped(f"**{term}**: {text}", "- ", "  ")]
    return "\n".join(lines + ["", "</details>"]) + "\n"
