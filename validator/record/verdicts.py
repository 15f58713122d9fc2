"""Re-derive a stored run's verdicts from its checks' numbers with the gate's own rules.

A summary.json whose verdicts were edited (a failing check marked "pass", the run's
verdict or exit code changed, the counts changed) must not be rendered as a pass:
each check's verdict is judged again from its recorded numbers by the judge's own
functions (``gate.judge``, ``gate.apply_correction``, ``evenness.apply_max_concentration``,
``gate.gate_result``, ``gate.require_serving_isa``), and any difference refuses the run (exit 2,
naming the first key that disagrees).
"""

from __future__ import annotations

import math
import typing
from dataclasses import fields, replace

from validator.errors import ValidatorError
from validator.judge.evenness import apply_max_concentration
from validator.judge.gate import (Check, apply_correction, gate_result, judge,
                                  require_serving_isa, same_rows)
from validator.record.schema import CheckRecord, RunRecord

CHECK_FIELDS = [f.name for f in fields(Check)]
FLOAT_FIELDS = {name for name, kind in typing.get_type_hints(Check).items() if kind is float}


def as_check(record: CheckRecord) -> Check:
    """The gate's check from its record (null numbers back to NaN, as the gate had them)."""
    values = record.model_dump()
    return Check(**{name: (math.nan if values[name] is None and name in FLOAT_FIELDS
                           else values[name]) for name in CHECK_FIELDS})


def rederive(record: RunRecord, source: str) -> tuple[list[Check], str, int]:
    """(checks judged again, the run's verdict, its exit code)."""
    rows = {s.name: s.rows for s in record.slices}
    checks = []
    for i, stored in enumerate(record.checks):
        if stored.slice not in rows:
            raise ValidatorError(f"{source}: checks[{i}].slice {stored.slice!r} is not among "
                                 f"the run's slices")
        check = as_check(stored)
        verdict, reason = judge(check, rows[stored.slice], record.gate)
        checks.append(replace(check, verdict=verdict, reason=reason))
    check_twins(checks, source)
    checks = apply_correction(checks, record.gate)
    checks = apply_max_concentration(checks, record.gate, list(record.rubric.dimensions))
    missing_isa = record.cpu.missing_isa if record.cpu is not None else []
    result = require_serving_isa(gate_result(checks, record.gate.on_inconclusive), missing_isa)
    return checks, result.verdict, result.exit_code


TWIN_FIELDS = ("n", "reference", "candidate_value", "degradation", "ci_low", "ci_high",
               "p_value_max_drop", "max_drop")


def check_twins(checks: list[Check], source: str) -> None:
    """A check marked as repeating an earlier slice's (``same_rows_as``, counted once in
    the correction) must carry that check's numbers: a copy of the slice gives the same
    ones, so a mark moved onto another check is an edit."""
    by_key = {(c.candidate, c.slice, c.dimension, c.role): c for c in checks}
    for i, check in enumerate(checks):
        if not check.same_rows_as:
            continue
        twin = by_key.get((check.candidate, check.same_rows_as, check.dimension, check.role))
        same = twin is not None and all(
            getattr(twin, f) == getattr(check, f)
            or (isinstance(getattr(check, f), float) and math.isnan(getattr(check, f))
                and math.isnan(getattr(twin, f))) for f in TWIN_FIELDS)
        if not same:
            raise ValidatorError(f"{source}: checks[{i}].same_rows_as is "
                                 f"{check.same_rows_as!r} but that slice's check does not "
                                 f"carry the same numbers; the file was edited")


def check_same_rows(record: RunRecord, table, source: str) -> None:
    """Each check's ``same_rows_as`` must be what the run's own slice columns give
    (gate.same_rows): a mark removed from a copied slice's checks would count them again
    in the correction, a mark added would drop one from it."""
    columns = [f"slice:{s.name}" for s in record.slices]
    if not set(columns) <= set(table.columns):
        return  # RunDir.require_columns names what is missing where it is needed
    masks = table[columns].astype(bool).set_axis([s.name for s in record.slices], axis=1)
    twins = same_rows(masks)
    for i, check in enumerate(record.checks):
        if check.slice in twins and check.same_rows_as != twins[check.slice]:
            raise ValidatorError(f"{source}: checks[{i}].same_rows_as is "
                                 f"{check.same_rows_as!r} but the run's predictions give "
                                 f"{twins[check.slice]!r} for slice {check.slice!r}; the file "
                                 f"was edited")


def check_verdicts(record: RunRecord, source: str) -> None:
    """ValidatorError naming the first stored verdict the gate's rules do not give."""
    checks, verdict, exit_code = rederive(record, source)
    for i, (stored, judged) in enumerate(zip(record.checks, checks)):
        if stored.verdict != judged.verdict:
            raise ValidatorError(
                f"{source}: checks[{i}].verdict is {stored.verdict!r} but the gate's rules "
                f"give {judged.verdict!r} for its numbers ({stored.candidate} on "
                f"{stored.slice} / {stored.dimension}); the file was edited")
        if stored.screened_loss != judged.screened_loss:
            raise ValidatorError(
                f"{source}: checks[{i}].screened_loss is {stored.screened_loss} but the "
                f"gate's rules give {judged.screened_loss} for its numbers; the file was "
                f"edited")
    if (record.verdict, record.exit_code) != (verdict, exit_code):
        raise ValidatorError(f"{source}: verdict {record.verdict!r} / exit_code "
                             f"{record.exit_code} but its checks give {verdict!r} / "
                             f"{exit_code}; the file was edited")
    counts = {v: sum(c.verdict == v for c in checks) for v in ("pass", "fail", "inconclusive")}
    stored = {"pass": record.counts.passed, "fail": record.counts.fail,
              "inconclusive": record.counts.inconclusive}
    if counts != stored:
        raise ValidatorError(f"{source}: counts {stored} but its checks give {counts}; "
                             f"the file was edited")
