"""The report's decision, the majority-rating baseline and --baseline comparisons
(validator.outputs.advice, .majority, .baseline), on small columns-backend runs; and
summary.md and junit.xml agreeing with the report on the default run."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from conftest import DIMENSIONS, columns_config, run_cli
from validator.outputs.baseline import classify
from validator.outputs.advice import advise, convincing, opening
from validator.judge.majority import MAJORITY, majority_predictions
from validator.outputs.majority import blind_spots
from validator.outputs.report_view import round_ticks
from validator.record.schema import CheckRecord, build_record

POINT = {"metric": "exact_agreement", "max_drop": 1.0, "min_rows": 50, "policy": "point",
         "correction": "none"}


def degrade(frame: pd.DataFrame, content_type: str) -> pd.DataFrame:
    frame = frame.copy()
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"] + frame.content_type.eq(content_type) * 0.6
    return frame


def gate_run(tmp, frame, name: str, *extra: str):
    candidates = [{"name": name, "backend": "columns", "columns": "{dimension}_cand"}]
    config = columns_config(tmp, frame, gate=POINT, candidates=candidates)
    return run_cli("run", "--config", str(config), "--out", str(tmp / "run"), "--quiet", *extra)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, scored_rows):
    """An older candidate losing on headlines, then a new one losing on subject lines,
    gated with --baseline on a sample that differs in one text (another sha256)."""
    old = tmp_path_factory.mktemp("old")
    result = gate_run(old, degrade(scored_rows, "headline"), "cand-old")
    assert result.returncode == 1, result.stderr
    new = tmp_path_factory.mktemp("new")
    frame = degrade(scored_rows, "subject_line")
    frame.loc[0, "text"] = frame.loc[0, "text"] + " (edited)"
    result = gate_run(new, frame, "cand", "--baseline", str(old / "run"))
    assert result.returncode == 1, result.stderr
    return old / "run", new / "run"


def checks_by(summary: dict, slice_name: str, verdict: str) -> list[dict]:
    return [c for c in summary["checks"] if c["slice"] == slice_name
            and c["verdict"] == verdict]


def test_baseline_names_new_failures_new_passes_and_another_sample(runs):
    old, new = runs
    before = json.loads((old / "summary.json").read_text())
    after = json.loads((new / "summary.json").read_text())
    assert checks_by(before, "headlines", "fail") and checks_by(after, "subject_lines", "fail")
    markdown = (new / "summary.md").read_text()
    assert "## Since the baseline" in markdown and "(against cand-old)" in markdown
    assert "another sample: sha256" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| new ")]
    assert any(r.startswith("| new failure | subject_lines / ") for r in rows)
    assert any(r.startswith("| new pass | headlines / ") for r in rows)
    failures = sum(1 for c in after["checks"] if c["verdict"] == "fail"
                   and next(b for b in before["checks"] if b["slice"] == c["slice"]
                            and b["dimension"] == c["dimension"])["verdict"] != "fail")
    assert f"{failures} new failures" in markdown
    html = (new / "report.html").read_text()
    assert 'id="baseline"' in html and "another sample: sha256" in html


def test_report_against_the_same_run_changes_nothing(runs):
    _, new = runs
    result = run_cli("report", str(new), "--baseline", str(new))
    assert result.returncode == 0, result.stderr
    markdown = (new / "summary.md").read_text()
    checks = len(json.loads((new / "summary.json").read_text())["checks"])
    assert f"0 new failures, 0 new passes, 0 moved among {checks} checks" in markdown
    assert "Not like for like" not in markdown and "| new " not in markdown
    assert "Same sample (sha256), slice definitions" in (new / "report.html").read_text()
    missing = run_cli("report", str(new), "--baseline", str(new / "nope"))
    assert missing.returncode == 2 and "summary.json: not found" in missing.stderr


def check(**values) -> CheckRecord:
    base = dict(candidate="c", slice="s", dimension="d", metric="exact_agreement", n=100,
                reference=50.0, candidate_value=48.0, degradation=2.0, ci_low=1.0,
                ci_high=3.0, max_drop=1.0, verdict="fail", reason="", p_value=None,
                p_value_adjusted=None, detectable_degradation=None, flips_to_disagree=0,
                flips_to_agree=0, human_ceiling=None)
    return CheckRecord.model_validate({**base, **values})


def test_classify_new_failure_new_pass_and_moves_beyond_the_interval():
    assert classify(check(verdict="pass"), check()) == "new failure"
    assert classify(check(verdict="inconclusive"), check()) == "new failure"
    assert classify(check(), check(verdict="pass")) == "new pass"
    assert classify(check(degradation=4.0), check()) == "moved"      # outside [1, 3]
    assert classify(check(degradation=2.9), check()) is None          # inside
    assert classify(check(verdict="pass"), check(verdict="inconclusive")) is None


def test_opening_cites_the_largest_lower_bound_never_an_inconclusive_check(runs):
    _, new = runs
    summary = build_record(json.loads((new / "summary.json").read_text()))
    loud = check(candidate="cand", slice="tiny", verdict="inconclusive", degradation=40.0,
                 ci_low=-5.0, ci_high=80.0)
    summary = summary.model_copy(update={"checks": [*summary.checks, loud]})
    text = opening(summary)
    first = convincing(summary)[0]
    assert first.ci_low == max(c.ci_low for c in summary.checks if c.verdict == "fail")
    assert f"{first.slice} / {first.dimension}" in text and "tiny" not in text


def test_a_passing_routed_candidate_ships_its_model_with_fallback(runs):
    old, _ = runs
    data = json.loads((old / "summary.json").read_text())
    candidate = data["scorers"][1]
    routed = {**candidate, "name": "routed", "backend": "route",
              "recipe": {"name": "route", "rules": [
                  {"slice": "headlines", "where": "{content_type: headline}", "to": "ref"},
                  {"slice": "sms", "where": "{content_type: sms}", "to": "twin"},
                  {"default": "cand-old"}]},
              "traffic": {"cand-old": 0.65, "ref": 0.3, "twin": 0.05}}
    data["scorers"].append(routed)
    data["checks"] += [{**c, "candidate": "routed", "verdict": "pass"}
                       for c in data["checks"]]
    summary = build_record(data)
    model, route = advise(summary, summary.scorers[1]), advise(summary, summary.scorers[2])
    assert model.action == "ship with fallback" and "headlines (30.0% of traffic)" in \
        model.sentence and "as the routed candidate routed" in model.sentence
    assert route.action == "ship with fallback" and route.sentence.startswith(
        "Ship routed: cand-old with fallback to ref on headlines (30.0% of traffic) and "
        "with sms sent to twin;")


def test_majority_baseline_predicts_the_most_common_rating_per_slice():
    human = pd.DataFrame({"a": [3.0, 3.0, 4.4, 1.0, np.nan], "b": [2.0, 5.0, np.nan, 2.0, 4.0],
                          "c": [np.nan] * 5})
    mask = np.array([True, True, True, False, True])  # row 3 is outside the slice
    got = majority_predictions(human, mask, (1, 5))
    assert (got[:, 0] == 3).all()  # 4.4 rounds to 4; 3 is the most common
    assert (got[:, 1] == 2).all()  # a tie (2, 5 and 4 once each in the slice): the lowest
    assert np.isnan(got[:, 2]).all()  # nobody rated it


def test_clustered_ratings_warn_that_the_metric_cannot_see(runs):
    _, new = runs
    summary = build_record(json.loads((new / "summary.json").read_text()))
    majority = {(m.slice, m.dimension): m.value for m in summary.metrics
                if m.scorer == MAJORITY and m.metric == "exact_agreement"}
    reference = {(m.slice, m.dimension): m.value for m in summary.metrics
                 if m.scorer == "ref" and m.metric == "exact_agreement"}
    assert set(majority) == set(reference)
    spots = blind_spots(summary)
    assert {(b.slice, b.dimension) for b in spots} == {
        key for key, value in majority.items() if reference[key] - value < 5}
    markdown = (new / "summary.md").read_text()
    assert ("cannot detect degradation" in markdown) == bool(spots)


@pytest.mark.parametrize("low, high", [(-15.5, 11.4), (-0.37, 0.52), (0.0, 730.0),
                                       (2.05, 2.3)])
def test_forest_ticks_are_round(low, high):
    ticks = round_ticks(low, high)
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert 3 <= len(ticks) <= 11 and len(steps) == 1
    assert f"{steps.pop():.0e}"[0] in "125" and low <= ticks[0] and ticks[-1] <= high


def test_the_report_takes_the_plan_validator_recommend_confirmed(runs):
    old, _ = runs
    recommended = run_cli("recommend", str(old))
    assert recommended.returncode == 0, recommended.stderr
    assert run_cli("report", str(old)).returncode == 0
    html = (old / "report.html").read_text()
    assert ">SHIP WITH FALLBACK</span> cand-old</h2>" in html
    assert "<p>Ship cand-old only with fallback to ref on headlines (" in html
    assert "the plan in routing.yaml that validator recommend chose" in html


def test_summary_md_links_the_ci_artifact_and_keeps_lines_short(runs):
    _, new = runs
    url = "https://ci.example.com/artifacts/42/report.html"
    result = run_cli("report", str(new), "--report-url", url)
    assert result.returncode == 0, result.stderr
    markdown = (new / "summary.md").read_text()
    assert f"Full report: [report.html]({url})" in markdown
    assert max(len(line) for line in markdown.splitlines()) < 200
    absolute = re.compile(r"(?<![\w.])" + re.escape(str(new.parent)))  # "../tmp/..." is fine
    assert not absolute.search(markdown) and "RUN_DIR" not in markdown
    assert "validator recommend ../" in markdown or "validator recommend run" in markdown
    assert markdown.count("<details>") == markdown.count("</details>") >= 2


@pytest.mark.e2e
def test_summary_md_and_junit_read_as_the_report(default_run):
    """junit's totals are the report's counts (failures = failed checks; inconclusive
    ones apart, named INCONCLUSIVE:), summary.md lists the checks in the report's order,
    lines under 200 characters, relative paths, a link to report.html."""
    _, out = default_run
    summary = json.loads((out / "summary.json").read_text())
    counts = summary["counts"]
    root = ET.parse(out / "junit.xml").getroot()
    blocking = summary["gate"]["on_inconclusive"] == "fail"
    assert int(root.get("tests")) == len(summary["checks"])
    assert int(root.get("failures")) == counts["fail"]
    assert int(root.get("errors" if blocking else "skipped")) == counts["inconclusive"]
    undecided = [case.get("name") for case in root.iter("testcase")
                 if case.find("error") is not None or case.find("skipped") is not None]
    assert len(undecided) == counts["inconclusive"]
    assert all(name.startswith("INCONCLUSIVE: ") for name in undecided)
    markdown = (out / "summary.md").read_text()
    assert max(len(line) for line in markdown.splitlines()) < 200
    assert "Full report: [report.html](report.html)" in markdown
    assert "RUN_DIR" not in markdown and summary["sample"]["path"] not in markdown
    assert f"Checks: {counts['fail']:,} failed, {counts['inconclusive']:,} inconclusive" \
        in markdown
    html = (out / "report.html").read_text()
    report_order = re.findall(r'<tbody class="check" id="check-([^"]+)"', html)
    listed = [f"{c}-{s}-{d}" for c, s, d in re.findall(
        r"^- \*\*(?:FAIL|INCONCLUSIVE|PASS)\*\* (\S+) · (\S+) · (\S+):", markdown, re.M)]
    assert listed and listed == [key for key in report_order if key in set(listed)]
    assert listed[:counts["fail"]] == report_order[:counts["fail"]]


def test_summary_records_the_run_and_older_files_still_render(runs):
    """summary.json's run block (id, start, duration, config hash, version, commit);
    a file written before it reads and renders, its provenance "not recorded"."""
    from validator.outputs.html import render_html

    _, new = runs
    data = json.loads((new / "summary.json").read_text())
    run = data["run"]
    assert set(run) == {"id", "started_at", "duration_s", "config_sha256", "tool_version",
                        "commit"}
    assert run["started_at"].endswith("+00:00") and run["duration_s"] > 0
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", run["id"])
    assert len(run["config_sha256"]) == 64 and run["tool_version"] == data["tool"]["version"]
    html = (new / "report.html").read_text()
    assert f"run id: <code>{run['id']}</code>" in html
    del data["run"]
    older = build_record(data)
    assert older.run is None
    assert "run: <code>not recorded" in render_html(older)


def test_a_tiny_slices_wide_interval_does_not_stretch_the_forest_axis():
    from types import SimpleNamespace

    from validator.outputs.report_view import forest

    rows = [check(slice="big", degradation=2.0, ci_low=1.0, ci_high=3.0),
            check(slice="tiny", degradation=4.0, ci_low=-40.0, ci_high=60.0)]
    plot = forest(SimpleNamespace(checks=rows, gate_checks=rows), "c", "d")
    big, tiny = plot["rows"]
    assert tiny["cut_low"] and tiny["cut_high"] and not (big["cut_low"] or big["cut_high"])
    assert big["x_high"] - big["x_low"] > 0.1 * (plot["width"] - plot["left"])
    labels = [float(t["label"]) for t in plot["ticks"]]
    assert -10 < labels[0] and labels[-1] < 10  # not -40 to 60
