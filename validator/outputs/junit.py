"""junit.xml: one testcase per check, one testsuite per candidate."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from validator.record.schema import CheckRecord, RunRecord


def check_message(check: CheckRecord) -> str:
    return (f"{check.metric}: reference {_fmt(check.reference)}, candidate "
            f"{_fmt(check.candidate_value)}, degradation {_fmt(check.degradation)} "
            f"(max_drop {check.max_drop:g}, n={check.n}): {check.reason}")


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
                                 name=f"{check.slice} / {check.dimension}")
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
