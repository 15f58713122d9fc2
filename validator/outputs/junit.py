"""junit.xml: one testcase per check, one testsuite per candidate."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from validator.record.schema import CheckRecord, RunRecord


def check_message(check: CheckRecord) -> str:
    return (f"{check.metric}: reference {_fmt(check.reference)}, candidate "
            f"{_fmt(check.candidate_value)}, degradation {_fmt(check.degradation)} "
            f"(max_drop {threshold(check)}, n={check.n}): {check.reason}")


def threshold(check: CheckRecord) -> str:
    """max_drop in the check's unit: "0.02 correlation", "1 percentage points"."""
    return f"{check.max_drop:g} {check.unit}" if check.unit else f"{check.max_drop:g}"


def guard_suffix(check: CheckRecord) -> str:
    """Names a location guard's check (its metric), so that it reads apart from the
    gate metric's check of the same slice and dimension."""
    return "" if check.role == "gate" else f" (location guard: {check.metric})"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def render_junit(summary: RunRecord) -> str:
    blocking_inconclusive = summary.gate.on_inconclusive == "fail"
    root = ET.Element("testsuites", name="slice-validator")
    for candidate in [s.name for s in summary.candidates]:
        checks = [c for c in summary.checks if c.candidate == candidate]
        suite = ET.SubElement(root, "testsuite", name=f"slice-validator.{candidate}",
                              tests=str(len(checks)))
        failures = skipped = 0
        for check in checks:
            case = ET.SubElement(suite, "testcase", classname=f"slice-validator.{candidate}",
                                 name=f"{check.slice} / {check.dimension}"
                                      f"{guard_suffix(check)}")
            message = check_message(check)
            if check.verdict == "fail" or (check.verdict == "inconclusive"
                                           and blocking_inconclusive):
                failures += 1
                ET.SubElement(case, "failure", message=message,
                              type=check.verdict).text = message
            elif check.verdict == "inconclusive":
                skipped += 1
                ET.SubElement(case, "skipped", message=message)
            ET.SubElement(case, "system-out").text = message
        suite.set("failures", str(failures))
        suite.set("skipped", str(skipped))
        suite.set("errors", "0")
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
