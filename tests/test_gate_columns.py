"""The gate end to end with the columns backend: known candidates, known verdicts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np

from conftest import DIMENSIONS, columns_config, human_mean, run_cli
from validator.judge.stats import rows_to_rule_out

# The tests below pin the point policy: every measured drop beyond max_drop blocks.
POINT = {"metric": "exact_agreement", "max_drop": 1.0, "min_rows": 50, "policy": "point",
         "correction": "none"}


UNSEEN = "of its CI are flips this slice's scored rows may not show"  # the margin's reason
RULES_OUT = rows_to_rule_out(1.0, 0.95)  # 368 rows, none flipped, rule out max_drop 1


def test_candidate_equal_to_reference_passes(tmp_path, scored_rows):
    """Identical predictions: every check's degradation is 0. A slice whose rows rule out
    unseen flips (validator.judge.stats.unseen_flips_margin) passes; a smaller one cannot
    show that production flips no more than max_drop's worth and is inconclusive, which
    more scored rows, not ratings, would decide. At max_drop 5, 72 rows do: all pass."""
    frame = scored_rows.copy()
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"]
    result = run_cli("run", "--config", str(columns_config(tmp_path, frame)),
                     "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 1, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    rows = {s["name"]: s["rows"] for s in summary["slices"]}
    assert {rows[c["slice"]] >= RULES_OUT for c in summary["checks"]} == {True, False}
    for check in summary["checks"]:
        assert check["degradation"] == 0
        if rows[check["slice"]] >= RULES_OUT:
            assert check["verdict"] == "pass" and check["ci_high"] < 1.0
        else:
            assert check["verdict"] == "inconclusive" and UNSEEN in check["reason"]
            assert check["rows_needed"] is None and check["ci_high"] >= 1.0
    config = columns_config(tmp_path, frame, gate={"metric": "exact_agreement",
                                                    "max_drop": 5.0, "min_rows": 50})
    result = run_cli("run", "--config", str(config), "--out", str(tmp_path / "five"), "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "five" / "summary.json").read_text())
    assert summary["verdict"] == "pass"
    assert all(c["degradation"] == 0 and c["verdict"] == "pass" for c in summary["checks"])
    assert len(summary["checks"]) == 9 * 8  # (all + 8 content types) x (7 dims + _all)


def degrade_headlines(frame, share: float):
    """On headline rows only, make the candidate disagree on ``share`` of the rows where
    the reference agreed with the human (per dimension); elsewhere it equals the reference."""
    rounded = lambda x: np.floor(np.clip(x, 1, 5) + 0.5)
    headlines = frame.content_type == "headline"
    for d in DIMENSIONS:
        ref = frame[f"{d}_ref"].to_numpy()
        agree = (rounded(ref) == rounded(human_mean(frame, d).to_numpy())) & headlines
        flip = np.flatnonzero(agree)[: int(round(share * headlines.sum()))]
        cand = ref.copy()
        cand[flip] = np.where(rounded(ref[flip]) >= 3, rounded(ref[flip]) - 1.2,
                              rounded(ref[flip]) + 1.2)
        frame[f"{d}_cand"] = cand
    return frame


def test_candidate_worse_only_on_headlines_fails_exactly_the_headline_checks(tmp_path,
                                                                            scored_rows):
    frame = degrade_headlines(scored_rows.copy(), share=0.03)
    out = tmp_path / "run"
    result = run_cli("run", "--config", str(columns_config(tmp_path, frame, gate=POINT)),
                     "--out", str(out), "--quiet")
    assert result.returncode == 1, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    failed = {(c["slice"], c["dimension"]) for c in summary["checks"] if c["verdict"] == "fail"}
    assert failed == {("headlines", d) for d in [*DIMENSIONS, "_all"]}
    assert summary["verdict"] == "fail" and summary["exit_code"] == 1
    rows = {s["name"]: s["rows"] for s in summary["slices"]}
    others = [c for c in summary["checks"] if c["slice"] != "headlines"]
    assert all(c["verdict"] == "pass" for c in others if rows[c["slice"]] >= RULES_OUT)
    assert all(c["verdict"] == "inconclusive" and UNSEEN in c["reason"]
               for c in others if rows[c["slice"]] < RULES_OUT)
    junit = ET.parse(out / "junit.xml").getroot()
    failing_cases = {case.get("name") for case in junit.iter("testcase")
                     if case.find("failure") is not None}
    assert failing_cases == {f"headlines / {d}" for d in [*DIMENSIONS, "_all"]}
    assert "FAIL" in (out / "summary.md").read_text()
    assert "headlines" in (out / "report.html").read_text()


def test_small_slice_is_inconclusive_and_blocks_by_default(tmp_path, scored_rows):
    frame = scored_rows.copy()
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"]
    config = columns_config(tmp_path, frame,
                            gate={"metric": "exact_agreement", "max_drop": 1.0, "min_rows": 100})
    result = run_cli("run", "--config", str(config), "--out", str(tmp_path / "a"), "--quiet")
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert result.returncode == 1 and summary["verdict"] == "inconclusive"
    small = {c["slice"] for c in summary["checks"] if c["verdict"] == "inconclusive"
             and "fewer than min_rows 100" in c["reason"]}
    assert small == {"sms", "push_notifications"}
    rows = {s["name"]: s["rows"] for s in summary["slices"]}
    unseen = {c["slice"] for c in summary["checks"] if c["verdict"] == "inconclusive"
              and UNSEEN in c["reason"]}
    assert unseen == {name for name, n in rows.items() if n < RULES_OUT}

    warn = columns_config(tmp_path, frame, gate={"metric": "exact_agreement", "max_drop": 1.0,
                                                 "min_rows": 100, "on_inconclusive": "warn"})
    result = run_cli("run", "--config", str(warn), "--out", str(tmp_path / "b"), "--quiet")
    assert result.returncode == 0, result.stderr


def test_configured_slice_with_zero_rows_fails(tmp_path, scored_rows):
    frame = scored_rows.copy()
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"]
    slices = tmp_path / "empty.yaml"
    slices.write_text("slices:\n  - name: podcasts\n    where: {content_type: podcast_ad}\n")
    config = columns_config(tmp_path, frame, slices=[str(slices)])
    result = run_cli("run", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert result.returncode == 1
    podcast = [c for c in summary["checks"] if c["slice"] == "podcasts"]
    assert podcast and all(c["verdict"] == "fail" for c in podcast)
    assert "no rows" in podcast[0]["reason"]


def test_override_raises_threshold_for_one_slice(tmp_path, scored_rows):
    frame = degrade_headlines(scored_rows.copy(), share=0.03)
    gate = {**POINT, "on_inconclusive": "warn",  # slices under 368 rows: unseen flips
            "overrides": [{"slice": "headlines", "max_drop": 5.0}]}
    result = run_cli("run", "--config", str(columns_config(tmp_path, frame, gate=gate)),
                     "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
