"""The report's first screen, per candidate: what fails (dimension, slice, size and CI
in words), whether what blocks it is a real loss or too few ratings, the ratings that
would decide, and the command to run next; and the run's provenance line and load
warning. Computed from summary.json only."""

from __future__ import annotations

import os
from pathlib import Path

from validator.judge.gate import likely_loss, margin_binds
from validator.outputs.advice import Decision, candidate_verdict, checks_of
from validator.outputs.formats import count, interval, points, seconds
from validator.record.schema import CheckRecord, RunRecord

SLICES_NAMED = 2      # slices named per losing dimension
DIMENSIONS_NAMED = 3  # dimensions named per candidate


def run_path(run_dir: Path | None, relative: bool = False) -> str:
    """The run directory as the reader would type it: relative to the current folder
    when below it (or always, ``relative``: summary.md shows no absolute path), else as
    given."""
    if run_dir is None:
        return "RUN_DIR"
    try:
        below = Path(run_dir).resolve().is_relative_to(Path.cwd().resolve())
        return os.path.relpath(run_dir) if below or relative else str(run_dir)
    except ValueError:  # another drive (Windows)
        return str(run_dir)


def report_order(checks: list[CheckRecord]) -> list[CheckRecord]:
    """Failed, then inconclusive, then passed; within each the largest lower CI bound of
    the degradation first (the report's, summary.md's and junit.xml's order)."""
    rank = {"fail": 0, "inconclusive": 1, "pass": 2}
    return sorted(checks, key=lambda c: (rank[c.verdict], c.ci_low is None,
                                         -(c.ci_low or 0.0), -(c.degradation or 0.0)))


def _loss(check: CheckRecord, summary: RunRecord, rows: dict[str, int]) -> dict:
    unit, confidence = summary.gate.unit, summary.gate.confidence
    return {"slice": check.slice, "rows": count(rows.get(check.slice, check.n)),
            "loss": points(check.degradation, unit),
            "ci": interval(check.ci_low, check.ci_high, unit, confidence),
            "threshold": points(check.max_drop, unit, 0), "check": check}


def losses_by_dimension(summary: RunRecord, checks: list[CheckRecord]) -> list[dict]:
    """Checks grouped per dimension, the dimension with the most convincing loss first,
    each with its first SLICES_NAMED slices in words."""
    rows = {s.name: s.rows for s in summary.slices}
    grouped: dict[str, list[CheckRecord]] = {}
    for c in report_order(checks):
        grouped.setdefault(c.dimension, []).append(c)
    return [{"dimension": dimension, "slices": [_loss(c, summary, rows)
                                                for c in found[:SLICES_NAMED]],
             "more": max(0, len(found) - SLICES_NAMED)}
            for dimension, found in list(grouped.items())[:DIMENSIONS_NAMED]]


def _ratings(open_checks: list[CheckRecord]) -> dict | None:
    """The rated rows the most demanding inconclusive check would need (rows_needed),
    and, when the rating design recorded them, under a flip-targeted and a uniform plan."""
    if not open_checks:
        return None
    needed = max(open_checks, key=lambda c: c.rows_needed or 0)
    targeted = [v for c in open_checks
                if (v := getattr(c, "ratings_needed_targeted", None)) is not None]
    uniform = [v for c in open_checks
               if (v := getattr(c, "ratings_needed_uniform", None)) is not None]
    within = sum(1 for c in open_checks if c.rows_needed and c.rows_needed <= 2 * c.n)
    return {"rows": needed.rows_needed, "slice": needed.slice, "within_double": within,
            "targeted": max(targeted) if targeted else None,
            "uniform": max(uniform) if uniform else None}


def blocking(summary: RunRecord, name: str) -> dict:
    """What keeps a candidate from shipping: real failures, likely losses (inconclusive,
    whole CI above max_drop, screened beyond it: judge.gate.likely_loss)
    and the other inconclusive checks (underpowered: more ratings would decide)."""
    checks = checks_of(summary, name)
    failed = [c for c in checks if c.verdict == "fail"]
    open_checks = [c for c in checks if c.verdict == "inconclusive"]
    likely = [c for c in open_checks if likely_loss(c)]
    unseen = [c for c in open_checks if margin_binds(c)]  # more scored rows, not ratings
    return {"failed": len(failed), "inconclusive": len(open_checks),
            "likely": len(likely), "underpowered": len(open_checks) - len(likely),
            "unseen": len(unseen),
            "blocks": summary.gate.on_inconclusive == "fail",
            "ratings": _ratings(open_checks),
            "failing": losses_by_dimension(summary, failed),
            "likely_losses": losses_by_dimension(summary, likely)}


def next_command(summary: RunRecord, decision: Decision, path: str,
                 found: dict) -> str | None:
    if decision.recommend:
        return f"validator recommend {path}"
    ratings = found["ratings"]
    if decision.action == "do not ship" and ratings and ratings["targeted"]:
        return (f"validator plan-ratings {path} --budget {ratings['targeted']} "
                f"--out rating-plan.csv")
    return None


def cards(summary: RunRecord, decisions: list[Decision], run_dir: Path | None,
          relative: bool = False) -> list[dict]:
    path = run_path(run_dir, relative)
    out = []
    for decision in decisions:
        found = blocking(summary, decision.candidate)
        out.append({"decision": decision, **found,
                    "verdict": candidate_verdict(summary, decision.candidate),
                    "next": next_command(summary, decision, path, found)})
    return out


def provenance(summary: RunRecord, baseline_dir: str | None) -> list[tuple[str, str]]:
    """(label, value) pairs of the provenance line."""
    run = summary.run
    items = []
    if run is None:
        items.append(("run", "not recorded (summary.json written before provenance)"))
    else:
        items += [("run id", run.id), ("started", run.started_at.replace("+00:00", " UTC")),
                  ("took", seconds(run.duration_s)),
                  ("config sha256", run.config_sha256[:12])]
        if run.commit:
            items.append(("commit", run.commit[:12]))
    items.append(("sample sha256", summary.sample.sha256[:12]))
    items += [(f"{s.name} model", s.fingerprint[:12]) for s in summary.scorers
              if s.fingerprint]
    items.append(("slice-validator", summary.tool.version))
    items.append(("baseline", baseline_dir) if baseline_dir else ("", "no baseline given"))
    return items


def under_load(summary: RunRecord) -> list[dict]:
    """Scorers whose speed was measured while the machine's 1-minute load average
    exceeded its cores: their speed figures are provisional."""
    cores = summary.cpu.cores if summary.cpu else None
    if not cores:
        return []
    return [{"name": s.name, "load": s.load_average_1m, "cores": cores}
            for s in summary.scorers
            if s.load_average_1m is not None and s.load_average_1m > cores]
