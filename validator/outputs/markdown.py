"""summary.md: the verdict and the checks that matter, for CI job summaries."""

from __future__ import annotations

from validator.outputs.html import megabytes, num
from validator.outputs.report_view import operating_sentence
from validator.outputs.report_view import problems as problem_checks
from validator.record import RunRecord

MAX_ROWS = 50


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(summary: RunRecord) -> str:
    gate, counts, sample = summary.gate, summary.counts, summary.sample
    lines = [f"# slice-validator: {summary.verdict.upper()}", "",
             f"Gate metric **{gate.metric}** ({gate.unit}), max_drop {gate.max_drop:g}, "
             f"policy {gate.policy}, {gate.confidence:.0%} paired bootstrap CIs "
             f"({gate.bootstrap_resamples} resamples), correction {gate.correction} "
             f"(false-fail budget {gate.false_fail_budget:g}), "
             f"min_rows {gate.min_rows}, on_inconclusive {gate.on_inconclusive}. "
             f"Sample `{_cell(sample.path)}`: {sample.rows} gate rows "
             f"of {sample.total_rows}.", "",
             f"Checks: {counts.fail} failed, {counts.inconclusive} inconclusive, "
             f"{counts.passed} passed.", ""]
    operating = operating_sentence(summary)
    if operating:
        lines += [operating, ""]
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
                         f"{_cell(c.slice)} | {c.dimension} | {c.n} | "
                         f"{num(c.reference)} | {num(c.candidate_value)} | "
                         f"{num(c.human_ceiling)} | {num(c.degradation)} | "
                         f"[{num(c.ci_low)}, {num(c.ci_high)}] | "
                         f"{num(c.p_value, 3)} ({num(c.p_value_adjusted, 3)}) | "
                         f"{num(c.detectable_degradation)} | "
                         f"{c.flips_to_disagree}/{c.flips_to_agree} | "
                         f"{c.max_drop:g} | {_cell(c.reason)} |")
        if len(problems) > MAX_ROWS:
            lines.append(f"\n{len(problems) - MAX_ROWS} more in summary.json.")
    return "\n".join(lines) + "\n"
