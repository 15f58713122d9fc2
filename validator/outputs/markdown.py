"""summary.md: the verdict, what to do with each candidate, the run's provenance and
the checks in the report's order (failed, inconclusive, passed: largest lower CI bound
first) in collapsible <details>, for CI job summaries (and, with --baseline, what
changed since the earlier run). Lines stay under 200 characters and paths relative;
a link line points to report.html (or ``--report-url``, a CI artifact's address)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from validator.outputs.baseline import Comparison
from validator.outputs.advice import decisions
from validator.outputs.discovery_view import sentence as discovery_sentence
from validator.outputs.first_screen import (cards, provenance, report_order, run_path,
                                            under_load)
from validator.outputs.formats import (count, interval, megabytes, num, points, pvalue,
                                       unit_short)
from validator.outputs.glossary import TERMS
from validator.outputs.formats import guard_suffix
from validator.outputs.majority import blind_sentence, blind_spots
from validator.outputs.power import power_lines
from validator.outputs.report_view import operating_sentence
from validator.record.schema import CheckRecord, RunRecord

MAX_ROWS = 50     # checks listed per verdict
WIDTH = 180       # wrap prose here: every line stays under 200 characters


# Characters that make markdown of data (a dimension named "**x** [y](z)" or "<img>"):
# escaped with a backslash. "_" only where it can close emphasis (not followed by a
# letter or digit), so names such as brand_voice stay readable in the raw file.
MARKDOWN_SPECIAL = re.compile(r"[\\`*\[\]<>|#~&]|_(?![A-Za-z0-9])")


def _cell(text) -> str:
    """Text from the data (or a sentence holding it) as inert markdown on one line."""
    return MARKDOWN_SPECIAL.sub(lambda m: "\\" + m.group(), str(text)).replace("\n", " ")


def _code(text) -> str:
    """Text from the data as a code span, fenced by more backticks than it holds."""
    text = str(text).replace("\n", " ").replace("|", "\\|")
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}" if fence != "`" else f"`{text}`"


def wrapped(text: str, first: str = "", rest: str = "") -> list[str]:
    """Markdown already made inert (data through ``_cell``/``_code``), wrapped."""
    return textwrap.wrap(text.replace("\n", " "), WIDTH, initial_indent=first,
                         subsequent_indent=rest, break_long_words=True,
                         break_on_hyphens=False) or [first.rstrip()]


def card_lines(summary: RunRecord, run_dir: Path | None) -> list[str]:
    lines = []
    for card in cards(summary, decisions(summary), run_dir, relative=True):
        d = card["decision"]
        lines += wrapped(f"**{d.action.upper()}** {_cell(d.sentence)}", "- ", "  ")
        if card["failed"] or card["inconclusive"]:
            lines += wrapped(_blocking(card), "  ", "  ")
        if card["next"]:
            lines.append(f"  Next: {_code(card['next'])}")
    return lines + [""]


def _blocking(card: dict) -> str:
    parts = [f"{card['failed']:,} checks fail"] * bool(card["failed"])
    if card["inconclusive"]:
        parts.append(f"{card['inconclusive']:,} inconclusive ({card['likely']:,} with the CI "
                     f"above max_drop, beyond it under Benjamini-Hochberg or at p < 0.001 but "
                     f"not after the family-wise correction"
                     + (", these block even so" if card["likely"] and not card["blocks"]
                        else "") + ", "
                     f"{card['underpowered']:,} underpowered"
                     + (f", {card['unseen']:,} of them on slices too small to rule out "
                        f"unseen flips: score more unrated rows, ratings cannot decide them"
                        if card["unseen"] else "")
                     + f"), which {'block' if card['blocks'] else 'only warn'}")
    text = "; ".join(parts)
    ratings = card["ratings"]
    if ratings and ratings["rows"]:
        text += (f"; {ratings['within_double']:,} of them would decide with at most twice "
                 f"their rated rows, the most demanding needs about "
                 f"{count(ratings['rows'])} ({_cell(ratings['slice'])})")
        if ratings["targeted"] is not None:
            text += (f"; a flip-targeted rating plan {count(ratings['targeted'])}, uniform "
                     f"{count(ratings['uniform'])}")
    return text + "."


def check_line(c: CheckRecord, summary: RunRecord) -> list[str]:
    unit, confidence = c.unit or summary.gate.unit, summary.gate.confidence
    head = (f"**{c.verdict.upper()}** {_cell(c.candidate)} · {_cell(c.slice)} · "
            f"{_cell(c.dimension)}{_cell(guard_suffix(c))}: "
            f"degradation {points(c.degradation, unit)} "
            f"({interval(c.ci_low, c.ci_high, unit, confidence)}), max_drop "
            f"{c.max_drop:g} {unit_short(unit)}, n = {count(c.n)} rows, adjusted p "
            f"{pvalue(c.p_value_adjusted)}")
    return wrapped(head, "- ", "  ") + wrapped(_cell(c.reason), "  ", "  ")


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
             *wrapped(f"Compared with {_code(run_path(Path(comparison.run_dir), relative=True))} "
                      f"(verdict {comparison.verdict.upper()})."), ""]
    for note in comparison.notes:
        lines += wrapped(f"**Not like for like:** {_cell(note)}.", "- ", "  ")
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


def guard_clause(gate) -> str:
    """The location guard the gate metric brings (docs/thresholds.md), if any."""
    guard = gate.location_guard
    if guard is None:
        return ""
    return (f" (blind to {guard.blind_to}: a location guard also checks "
            f"{guard.metric}, max_drop {guard.max_drop:g} {guard.unit})")


def render_markdown(summary: RunRecord, comparison: Comparison | None = None,
                    run_dir: Path | None = None, report_url: str | None = None) -> str:
    gate, counts, sample = summary.gate, summary.counts, summary.sample
    baseline = run_path(Path(comparison.run_dir), relative=True) if comparison else None
    lines = [f"# slice-validator: {summary.verdict.upper()}", "",
             f"Full report: [report.html]({report_url or 'report.html'})", "",
             *card_lines(summary, run_dir),
             *[f"> **Warning:** {_cell(warning)}\n" for warning in summary.warnings],
             *wrapped(_cell(" · ".join(f"{k} {v}".strip()
                                       for k, v in provenance(summary, baseline)))), "",
             *wrapped(f"Gate metric {gate.metric} ({gate.unit}), max_drop "
                      f"{gate.max_drop:g} {gate.unit}{guard_clause(gate)}, policy "
                      f"{gate.policy}, {gate.confidence:.0%} paired "
                      f"bootstrap CIs ({gate.bootstrap_resamples:,} resamples), correction "
                      f"{gate.correction} (false-fail budget {gate.false_fail_budget:g}), "
                      f"min_rows {gate.min_rows:,}, on_inconclusive {gate.on_inconclusive}. "
                      f"Sample {_code(Path(sample.path.replace(chr(92), '/')).name)}: "
                      f"{sample.rows:,} gate rows of {sample.total_rows:,}."), "",
             f"Checks: {counts.fail:,} failed, {counts.inconclusive:,} inconclusive, "
             f"{counts.passed:,} passed.", "", "## Power before work", "",
             *[line for power in power_lines(summary)
               for line in wrapped(_cell(power), "- ", "  ")], ""]
    blind = blind_sentence(summary, blind_spots(summary))
    for extra in (operating_sentence(summary) and _cell(operating_sentence(summary)),
                  blind and f"**Warning:** {_cell(blind)}",
                  summary.discovery is not None and _cell(discovery_sentence(summary))):
        if extra:
            lines += wrapped(extra) + [""]
    if comparison is not None:
        lines += baseline_lines(comparison)
    lines += ["## Checks", "", *check_sections(summary), "## Scorers", "",
              *scorer_lines(summary), "", "<details>", "<summary>Terms</summary>", ""]
    lines += [line for term, text in TERMS.items() for line in
              wrapped(f"**{_cell(term)}**: {_cell(text)}", "- ", "  ")]
    return "\n".join(lines + ["", "</details>"]) + "\n"
