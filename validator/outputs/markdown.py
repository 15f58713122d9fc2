"""summary.md: the verdict, what to do with each candidate and the checks that matter,
for CI job summaries (and, with --baseline, what changed since the earlier run)."""

from __future__ import annotations

import re

from validator.outputs.baseline import Comparison
from validator.outputs.power import power_lines
from validator.outputs.advice import RECOMMEND, decisions, opening
from validator.outputs.discovery_view import sentence as discovery_sentence
from validator.outputs.html import megabytes, num
from validator.outputs.junit import guard_suffix, threshold
from validator.outputs.majority import blind_sentence, blind_spots
from validator.outputs.report_view import operating_sentence
from validator.outputs.report_view import problems as problem_checks
from validator.record.schema import RunRecord

MAX_ROWS = 50


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


def decision_lines(summary: RunRecord) -> list[str]:
    lines = [_cell(opening(summary)), ""]
    for d in decisions(summary):
        hint = (f" `{RECOMMEND}` searches for slices to hand back to the reference."
                if d.recommend else "")
        lines.append(f"- **{d.action.upper()}**: {_cell(d.sentence)}{hint}")
    blind = blind_sentence(summary, blind_spots(summary))
    return lines + ([""] + [f"> **Warning:** {_cell(blind)}"] if blind else []) + [""]


def baseline_lines(comparison: Comparison, limit: int = 30) -> list[str]:
    """Per candidate: the counts of changed checks and the changes, the largest first."""
    lines = ["## Since the baseline", "",
             f"Compared with {_code(comparison.run_dir)} (verdict "
             f"{comparison.verdict.upper()}).", ""]
    lines += [f"- **Not like for like:** {_cell(note)}." for note in comparison.notes]
    for pair in comparison.pairs:
        against = "" if pair.baseline == pair.candidate else f" (against {_cell(pair.baseline)})"
        lines += ["", f"### {_cell(pair.candidate)}{against}", "",
                  f"{pair.counts}.", ""]
        if not pair.changes:
            continue
        lines += ["| change | slice | dimension | before | now | degradation before | now "
                  "| CI now |", "|---|---|---|---|---|---:|---:|---|"]
        for c in pair.changes[:limit]:
            lines.append(f"| {c.kind} | {_cell(c.slice)} | {_cell(c.dimension)} | "
                         f"{c.before.verdict} | {c.after.verdict} | "
                         f"{num(c.before.degradation)} | {num(c.after.degradation)} | "
                         f"[{num(c.after.ci_low)}, {num(c.after.ci_high)}] |")
        if len(pair.changes) > limit:
            lines.append(f"\n{len(pair.changes) - limit} more in report.html.")
    return lines + [""]


def guard_clause(gate) -> str:
    """The location guard the gate metric brings (docs/thresholds.md), if any."""
    guard = gate.location_guard
    if guard is None:
        return ""
    return (f" (blind to {guard.blind_to}: a location guard also checks "
            f"{guard.metric}, max_drop {guard.max_drop:g} {guard.unit})")


def render_markdown(summary: RunRecord, comparison: Comparison | None = None) -> str:
    gate, counts, sample = summary.gate, summary.counts, summary.sample
    lines = [f"# slice-validator: {summary.verdict.upper()}", "",
             *decision_lines(summary),
             *[f"> **Warning:** {_cell(warning)}\n" for warning in summary.warnings],
             f"Gate metric **{_cell(gate.metric)}** ({gate.unit}), max_drop {gate.max_drop:g} "
             f"{gate.unit}{guard_clause(gate)}, "
             f"policy {gate.policy}, {gate.confidence:.0%} paired bootstrap CIs "
             f"({gate.bootstrap_resamples} resamples), correction {gate.correction} "
             f"(false-fail budget {gate.false_fail_budget:g}), "
             f"min_rows {gate.min_rows}, on_inconclusive {gate.on_inconclusive}. "
             f"Sample {_code(sample.path)}: {sample.rows} gate rows "
             f"of {sample.total_rows}.", "",
             f"Checks: {counts.fail} failed, {counts.inconclusive} inconclusive, "
             f"{counts.passed} passed.", ""]
    lines += ["## Power before work", "",
              *[f"- {_cell(line)}" for line in power_lines(summary)], ""]
    operating = operating_sentence(summary)
    if operating:
        lines += [operating, ""]
    if summary.discovery is not None:
        lines += [_cell(discovery_sentence(summary)), ""]
    if comparison is not None:
        lines += baseline_lines(comparison)
    lines += ["## Scorers", "",
              "| scorer | role | backend | recipe | size (MB) | harness peak RSS (MB) "
              "| memory alone (MB) | p50 ms | p95 ms | rows/s | capacity req/s | speedup "
              "| size ratio | memory ratio | capacity ratio |",
              "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summary.scorers:
        recipe = (s.recipe or {}).get("name", "")
        backend = f"{s.backend} ({s.runtime})" if s.runtime else s.backend
        lines.append(f"| {_cell(s.name)} | {s.role} | {backend} | {recipe} | "
                     f"{megabytes(s.size_bytes)} | {megabytes(s.peak_rss_bytes)} | "
                     f"{megabytes(s.memory_bytes)} | "
                     f"{num(s.latency_ms_p50, 1)} | {num(s.latency_ms_p95, 1)} | "
                     f"{num(s.throughput_rows_per_s, 0)} | {num(s.capacity_rps, 1)} | "
                     f"{num(s.speedup_vs_reference)} | {num(s.size_vs_reference)} | "
                     f"{num(s.memory_vs_reference)} | {num(s.capacity_vs_reference)} |")
    problems = problem_checks(summary)
    if problems:
        lines += ["", "## Failing and inconclusive checks", "",
                  "| verdict | candidate | slice | dimension | n | reference | candidate | "
                  "human ceiling | degradation | CI | p (adj.) | detectable | flips -/+ | "
                  "max_drop | reason |",
                  "|---|---|---|---|---:|---:|---:|---:|---:|---|---|---:|---|---:|---|"]
        for c in problems[:MAX_ROWS]:
            lines.append(f"| {c.verdict.upper()} | {_cell(c.candidate)} | "
                         f"{_cell(c.slice)} | {_cell(c.dimension)}{guard_suffix(c)} | {c.n} | "
                         f"{num(c.reference)} | {num(c.candidate_value)} | "
                         f"{num(c.human_ceiling)} | {num(c.degradation)} | "
                         f"[{num(c.ci_low)}, {num(c.ci_high)}] | "
                         f"{num(c.p_value, 3)} ({num(c.p_value_adjusted, 3)}) | "
                         f"{num(c.detectable_degradation)} | "
                         f"{c.flips_to_disagree}/{c.flips_to_agree} | "
                         f"{threshold(c)} | {_cell(c.reason)} |")
        if len(problems) > MAX_ROWS:
            lines.append(f"\n{len(problems) - MAX_ROWS} more in summary.json.")
    return "\n".join(lines) + "\n"
