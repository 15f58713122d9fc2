"""junit.xml: per candidate, one testsuite of its decided checks (a failing check is a
``<failure>``) and one of its inconclusive checks, named ``INCONCLUSIVE: ...`` with
type ``inconclusive``: an ``<error>`` when inconclusive checks block the release, a
``<skipped>`` when they only warn. CI's totals then read as the report's: failures =
failed checks, errors or skipped = inconclusive ones. Checks in the report's order."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from validator.outputs.first_screen import report_order
from validator.outputs.formats import guard_suffix, pvalue, threshold
from validator.record.schema import CheckRecord, RunRecord

INCONCLUSIVE_PREFIX = "INCONCLUSIVE: "


def check_message(check: CheckRecord) -> str:
    return (f"{check.metric}: reference {_fmt(check.reference)}, candidate "
            f"{_fmt(check.candidate_value)}, degradation {_fmt(check.degradation)} "
            f"(max_drop {threshold(check)}, n={check.n:,}, adjusted p "
            f"{pvalue(check.p_value_adjusted)}): {check.reason}")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _suite(root: ET.Element, name: str, checks: list[CheckRecord], blocking: bool) -> None:
    suite = ET.SubElement(root, "testsuite", name=name, tests=str(len(checks)))
    totals = {"failures": 0, "errors": 0, "skipped": 0}
    for check in checks:
        label = f"{check.slice} / {check.dimension}{guard_suffix(check)}"
        undecided = check.verdict == "inconclusive"
        case = ET.SubElement(suite, "testcase", classname=name,
                             name=INCONCLUSIVE_PREFIX + label if undecided else label)
        message = check_message(check)
        if check.verdict == "fail":
            totals["failures"] += 1
            ET.SubElement(case, "failure", message=message, type="fail").text = message
        elif undecided:
            kind = "error" if blocking else "skipped"
            totals["errors" if blocking else "skipped"] += 1
            ET.SubElement(case, kind, message=message, type="inconclusive").text = message
        ET.SubElement(case, "system-out").text = message
    for key, value in totals.items():
        suite.set(key, str(value))


def render_junit(summary: RunRecord) -> str:
    blocking = summary.gate.on_inconclusive == "fail"
    root = ET.Element("testsuites", name="slice-validator")
    for candidate in [s.name for s in summary.candidates]:
        checks = report_order([c for c in summary.checks if c.candidate == candidate])
        _suite(root, f"slice-validator.{candidate}",
               [c for c in checks if c.verdict != "inconclusive"], blocking)
        undecided = [c for c in checks if c.verdict == "inconclusive"]
        if undecided:
            _suite(root, f"slice-validator.{candidate}.inconclusive", undecided, blocking)
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key)) for s in root)))
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
