"""Since the last release: this run's checks against those of an earlier run
(``--baseline OTHER_RUN_DIR``), computed from the two summary.json files only.

Candidates are paired by name; those left over are paired in order (an older candidate
under another name). For each pair and each (slice, dimension) both runs checked:

- **new failure**: fails now, did not fail before;
- **new pass**: passes now, did not pass before;
- **moved**: same verdict, but the earlier degradation lies outside this run's
  confidence interval (it moved by more than its CI).

Differences that make the comparison less than like for like are stated, never
hidden: another sample (sha256) or row count, slices added, removed or redefined, and
another gate metric, threshold or policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from validator.errors import ValidatorError
from validator.record.schema import CheckRecord, RunRecord

KINDS = ("new failure", "new pass", "moved")
PLURALS = {"new failure": "new failures", "new pass": "new passes", "moved": "moved"}


@dataclass
class Change:
    kind: str
    slice: str
    dimension: str
    before: CheckRecord
    after: CheckRecord

    @property
    def delta(self) -> float | None:
        if self.before.degradation is None or self.after.degradation is None:
            return None
        return self.after.degradation - self.before.degradation


@dataclass
class Pair:
    candidate: str
    baseline: str
    changes: list[Change]
    compared: int  # checks present in both runs

    def count(self, kind: str) -> int:
        return sum(c.kind == kind for c in self.changes)

    @property
    def counts(self) -> str:
        """"2 new failures, 1 new pass, 0 moved among 64 checks in both runs"."""
        parts = [f"{self.count(k)} {k if self.count(k) == 1 else PLURALS[k]}" for k in KINDS]
        return f"{', '.join(parts)} among {self.compared} checks in both runs"


@dataclass
class Comparison:
    run_dir: str
    verdict: str                 # the baseline run's verdict
    pairs: list[Pair]
    notes: list[str] = field(default_factory=list)   # what differs beyond the checks


def read_baseline(run_dir: Path) -> tuple[Path, RunRecord]:
    """The earlier run's folder and record, read and verified (``RunDir``)."""
    from validator.record.run_dir import RunDir

    try:
        return run_dir, RunDir.read(run_dir).record
    except ValidatorError as exc:
        raise ValidatorError(f"--baseline: {exc}") from exc


def classify(before: CheckRecord, after: CheckRecord) -> str | None:
    if after.verdict == "fail" and before.verdict != "fail":
        return "new failure"
    if after.verdict == "pass" and before.verdict != "pass":
        return "new pass"
    if (after.verdict == before.verdict and None not in (before.degradation, after.ci_low,
                                                          after.ci_high)
            and not after.ci_low <= before.degradation <= after.ci_high):
        return "moved"
    return None


def pair_candidates(now: RunRecord, before: RunRecord) -> list[tuple[str, str]]:
    names = [s.name for s in now.candidates]
    earlier = [s.name for s in before.candidates]
    pairs = [(n, n) for n in names if n in earlier]
    rest_now = [n for n in names if n not in earlier]
    rest_before = [n for n in earlier if n not in names]
    return pairs + list(zip(rest_now, rest_before))


def compare_checks(now: RunRecord, before: RunRecord, name: str, old: str) -> Pair:
    earlier = {(c.slice, c.dimension): c for c in before.gate_checks if c.candidate == old}
    changes, compared = [], 0
    for check in (c for c in now.gate_checks if c.candidate == name):
        previous = earlier.get((check.slice, check.dimension))
        if previous is None:
            continue
        compared += 1
        kind = classify(previous, check)
        if kind:
            changes.append(Change(kind, check.slice, check.dimension, previous, check))
    changes.sort(key=lambda c: (KINDS.index(c.kind), -abs(c.delta or 0.0)))
    return Pair(name, old, changes, compared)


def _slice_notes(now: RunRecord, before: RunRecord) -> list[str]:
    current = {s.name: s for s in now.slices}
    earlier = {s.name: s for s in before.slices}
    notes = []
    added = [n for n in current if n not in earlier]
    removed = [n for n in earlier if n not in current]
    redefined = [n for n in current if n in earlier and current[n].where != earlier[n].where]
    resized = [f"{n} ({earlier[n].rows} -> {current[n].rows} rows)" for n in current
               if n in earlier and current[n].rows != earlier[n].rows]
    for label, names in (("slices only in this run", added),
                         ("slices only in the baseline", removed),
                         ("slices defined differently", redefined),
                         ("slices of another size", resized)):
        if names:
            notes.append(f"{label}: {', '.join(names)}")
    return notes


def _gate_notes(now: RunRecord, before: RunRecord) -> list[str]:
    keys = ("metric", "max_drop", "policy", "confidence", "correction", "min_rows")
    return [f"gate.{k} differs: {getattr(before.gate, k)} in the baseline, "
            f"{getattr(now.gate, k)} now" for k in keys
            if getattr(before.gate, k) != getattr(now.gate, k)]


def compare(now: RunRecord, baseline: tuple[Path, RunRecord]) -> Comparison:
    run_dir, before = baseline
    notes = []
    if now.sample.sha256 != before.sample.sha256:
        notes.append(f"another sample: sha256 {before.sample.sha256[:12]}… "
                     f"({before.sample.rows} gate rows) in the baseline, "
                     f"{now.sample.sha256[:12]}… ({now.sample.rows}) now; differences "
                     f"mix the candidate's change with the sample's")
    elif now.sample.rows != before.sample.rows:
        notes.append(f"the same sample file, but {before.sample.rows} gate rows in the "
                     f"baseline and {now.sample.rows} now (sample.where differs)")
    notes += _slice_notes(now, before) + _gate_notes(now, before)
    pairs = [compare_checks(now, before, n, o) for n, o in pair_candidates(now, before)]
    paired = {p.candidate for p in pairs}
    unpaired = [s.name for s in now.candidates if s.name not in paired]
    if unpaired:
        notes.append(f"no baseline candidate to compare with: {', '.join(unpaired)}")
    if now.reference.fingerprint != before.reference.fingerprint:
        notes.append(f"the reference differs: {before.reference.name} "
                     f"({before.reference.fingerprint or 'columns'}) in the baseline, "
                     f"{now.reference.name} ({now.reference.fingerprint or 'columns'}) now")
    return Comparison(str(run_dir), before.verdict, pairs, notes)
