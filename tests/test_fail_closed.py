"""No path to a wrong PASS: thresholds, corrections, atomic run directories, every
metric's direction, inconclusive runs, data checks and Ctrl-C.

Gate runs use the columns backend in process (fast); the Ctrl-C test signals a real
``python -m validator run`` scoring a tiny model.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from statsmodels.stats.multitest import multipletests
from typer.testing import CliRunner

from conftest import (DIMENSIONS, LENIENT_GATE, ROOT, SAMPLE, columns_config, human_mean,
                      tiny_model_dir)
from test_gate_columns import degrade_headlines
from test_stats import check_with
from validator.cli import app
from validator.config import DEFAULT_CONFIG, GateConfig, parse_config
from validator.errors import ConfigError
from validator.judge.gate import FAIL, INCONCLUSIVE, PASS, apply_correction, judge
from validator.metrics import METRICS


def gate_run(tmp_path: Path, frame: pd.DataFrame, *extra: str, out: str = "run", **config):
    """(exit code, summary or None, CliRunner result) of one in-process run."""
    path = columns_config(tmp_path, frame, **config)
    result = CliRunner().invoke(app, ["run", "--config", str(path), "--out",
                                      str(tmp_path / out), "--quiet", *extra])
    summary_path = tmp_path / out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return result.exit_code, summary, result


def same_as_reference(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"]
    return frame


GATE = {"metric": "exact_agreement", "max_drop": 1.0, "min_rows": 50}


# -- thresholds -----------------------------------------------------------------------

@pytest.mark.parametrize("gate, key, shown", [
    ({"max_drop": math.nan}, "gate.max_drop", "nan"),
    ({"max_drop": math.inf}, "gate.max_drop", "inf"),
    ({"max_drop": -math.inf}, "gate.max_drop", "-inf"),
    ({"max_drop": -0.5}, "gate.max_drop", "-0.5"),
    ({"overrides": [{"slice": "sms", "max_drop": 2}, {"slice": "headlines",
                                                       "max_drop": math.nan}]},
     "gate.overrides[1].max_drop", "nan"),
    ({"overrides": [{"dimension": "tone", "max_drop": -1}]}, "gate.overrides[0].max_drop", "-1"),
])
def test_thresholds_must_be_finite_and_not_negative(gate, key, shown):
    with pytest.raises(ConfigError) as info:
        parse_config({**DEFAULT_CONFIG, "gate": gate}, "c.yaml", Path("."))
    assert str(info.value) == f"c.yaml: {key}: must be a finite number >= 0 (got {shown})"


def test_zero_max_drop_is_allowed():
    config = parse_config({**DEFAULT_CONFIG, "gate": {"max_drop": 0}}, "c.yaml", Path("."))
    assert config.gate.max_drop == 0


@pytest.mark.parametrize("policy", ["point", "confident", "non_inferiority"])
def test_a_nan_threshold_that_reaches_judge_fails(policy):
    # everything else would pass: small degradation, CI below, resolvable slice
    check = check_with(max_drop=math.nan, degradation=0.1, ci_low=-0.5, ci_high=0.4,
                       detectable_degradation=0.2)
    gate = GateConfig(policy=policy)
    assert judge(check, 400, gate)[0] == FAIL
    assert judge(check_with(max_drop=1.0, degradation=0.1, ci_low=-0.5, ci_high=0.4,
                            detectable_degradation=0.2), 400, gate)[0] == PASS


def test_an_unknown_detectable_degradation_is_not_a_pass():
    check = check_with(degradation=0.1, detectable_degradation=math.nan)
    assert judge(check, 400, GateConfig(policy="point"))[0] == INCONCLUSIVE


# -- corrections ----------------------------------------------------------------------

@pytest.mark.parametrize("correction", ["holm", "bh"])
def test_correction_softens_only_difference_test_failures(correction):
    insignificant = dict(degradation=0.5, ci_low=-1.0, ci_high=2.0, p_value_max_drop=0.6)
    point = check_with(verdict=FAIL, **insignificant)
    non_inferiority = check_with(verdict=FAIL, **insignificant)
    corrected = apply_correction([point], GateConfig(policy="point", correction=correction))
    assert corrected[0].verdict == INCONCLUSIVE
    corrected = apply_correction([non_inferiority], GateConfig(policy="non_inferiority",
                                                               correction=correction))
    assert corrected[0].verdict == FAIL and corrected[0].p_value_max_drop_adjusted == 0.6


def test_correction_keeps_failures_without_rows_or_p_value():
    gate = GateConfig(policy="point", correction="holm")
    empty = check_with(verdict=FAIL, n=0, p_value_max_drop=1.0)
    unknown = check_with(verdict=FAIL, p_value_max_drop=math.nan)
    assert [c.verdict for c in apply_correction([empty, unknown], gate)] == [FAIL, FAIL]


def noisy_headlines(frame: pd.DataFrame, sd: float, seed: int = 3) -> pd.DataFrame:
    """The candidate equals the reference except on headlines, where it adds noise."""
    frame = same_as_reference(frame)
    rng = np.random.default_rng(seed)
    headlines = (frame.content_type == "headline").to_numpy()
    for d in DIMENSIONS:
        noise = rng.normal(0, sd, len(frame)) * headlines
        frame[f"{d}_cand"] = frame[f"{d}_ref"] + noise
    return frame


def test_non_inferiority_failure_is_not_softened_by_correction_even_with_warn(tmp_path,
                                                                             scored_rows):
    gate = {**GATE, "policy": "non_inferiority", "correction": "holm",
            "on_inconclusive": "warn"}
    code, summary, result = gate_run(tmp_path, noisy_headlines(scored_rows, 0.4), gate=gate)
    assert code == 1 and summary["verdict"] == "fail", result.output
    failed = [c for c in summary["checks"] if c["verdict"] == "fail"]
    assert failed and all("non-inferiority not shown" in c["reason"] for c in failed)
    assert any(c["p_value_adjusted"] >= 0.05 for c in failed)  # not significant, still fail


def test_bh_correction_end_to_end(tmp_path, scored_rows):
    frame = degrade_headlines(same_as_reference(scored_rows), share=0.10)
    code, summary, _ = gate_run(tmp_path, frame, gate={**GATE, "correction": "bh"})
    assert code == 1 and summary["verdict"] == "fail"
    checks = summary["checks"]
    known = [c for c in checks if c["p_value"] is not None]
    expected = multipletests([c["p_value"] for c in known], method="fdr_bh")[1]
    assert [c["p_value_adjusted"] for c in known] == pytest.approx(list(expected))
    failed = {(c["slice"], c["dimension"]) for c in checks if c["verdict"] == "fail"}
    assert ("headlines", "_all") in failed
    # the decision reads p_value_max_drop_adjusted (p_value_adjusted is reported only):
    # BH over the threshold p-values, and every failure beyond the budget after it
    tested = [c for c in checks if c["p_value_max_drop"] is not None]
    deciding = multipletests([c["p_value_max_drop"] for c in tested], method="fdr_bh")[1]
    assert [c["p_value_max_drop_adjusted"] for c in tested] == pytest.approx(list(deciding))
    holm = multipletests([c["p_value_max_drop"] for c in tested], method="holm")[1]
    assert list(holm) != pytest.approx(list(deciding))  # the test tells BH from Holm
    budget = summary["gate"]["false_fail_budget"]
    assert all(c["p_value_max_drop_adjusted"] < budget
               for c in checks if c["verdict"] == "fail" and c["n"] > 0)


def test_zero_row_slice_under_a_correction_still_fails(tmp_path, scored_rows):
    slices = tmp_path / "empty.yaml"
    slices.write_text("slices:\n  - name: podcasts\n    where: {content_type: podcast_ad}\n")
    gate = {**GATE, "correction": "holm", "on_inconclusive": "warn"}
    code, summary, _ = gate_run(tmp_path, same_as_reference(scored_rows), gate=gate,
                                slices=[str(ROOT / "slices" / "content_types.yaml"),
                                        str(slices)])
    assert code == 1 and summary["verdict"] == "fail"
    podcasts = [c for c in summary["checks"] if c["slice"] == "podcasts"]
    assert podcasts and all(c["verdict"] == "fail" and "no rows" in c["reason"]
                            for c in podcasts)


# -- every metric, with its direction -------------------------------------------------

@pytest.mark.parametrize("metric", sorted(METRICS))
def test_every_metric_is_gated_with_its_direction(tmp_path, scored_rows, metric):
    """Worse on headlines (noise), perfect on subject lines: positive degradation fails,
    negative never does, whichever way the metric points (MAE: lower is better)."""
    frame = noisy_headlines(scored_rows, 1.2)
    subject = (frame.content_type == "subject_line").to_numpy()
    for d in DIMENSIONS:
        frame.loc[subject, f"{d}_cand"] = human_mean(frame, d)[subject]
    code, summary, _ = gate_run(tmp_path, frame, gate={"metric": metric, "max_drop": 0.0,
                                                       "min_rows": 50,
                                                       "bootstrap_resamples": 100})
    assert code == 1
    checks = {(c["slice"], c["dimension"]): c for c in summary["checks"]
              if c["role"] == "gate"}  # kappa and spearman also bring location guards
    worse, better = checks[("headlines", "_all")], checks[("subject_lines", "_all")]
    higher_is_better = METRICS[metric].higher_is_better
    for check in (worse, better):
        sign = 1 if higher_is_better else -1
        assert check["degradation"] == pytest.approx(
            sign * (check["reference"] - check["candidate_value"]))
    if metric == "mean_absolute_error":
        assert worse["candidate_value"] > worse["reference"]  # larger error is worse
        assert better["candidate_value"] == pytest.approx(0.0)
    assert worse["degradation"] > 0 and worse["verdict"] == "fail"
    assert better["degradation"] < 0 and better["verdict"] != "fail"


# -- inconclusive runs and junit ------------------------------------------------------

def junit_cases(out: Path) -> list[ET.Element]:
    return list(ET.parse(out / "junit.xml").getroot().iter("testcase"))


def test_warn_with_every_check_inconclusive_exits_1(tmp_path, scored_rows):
    gate = {**GATE, "min_rows": 100_000, "on_inconclusive": "warn"}
    code, summary, _ = gate_run(tmp_path, same_as_reference(scored_rows), gate=gate)
    assert code == 1 and summary["verdict"] == "inconclusive" and summary["exit_code"] == 1
    assert {c["verdict"] for c in summary["checks"]} == {"inconclusive"}
    cases = junit_cases(tmp_path / "run")
    assert len(cases) == len(summary["checks"])
    assert all(case.find("skipped") is not None and case.find("failure") is None
               for case in cases)


def test_junit_reports_blocking_inconclusive_checks_as_errors_apart(tmp_path, scored_rows):
    """Blocking inconclusive checks are <error type="inconclusive"> in their own suite,
    named INCONCLUSIVE: ..., so CI's failure count is the report's failed count."""
    gate = {**LENIENT_GATE, "min_rows": 100}  # sms and push notifications are too small
    code, summary, _ = gate_run(tmp_path, same_as_reference(scored_rows), gate=gate)
    assert code == 1 and summary["verdict"] == "inconclusive"
    inconclusive = {f"INCONCLUSIVE: {c['slice']} / {c['dimension']}" for c in summary["checks"]
                    if c["verdict"] == "inconclusive"}
    cases = junit_cases(tmp_path / "run")
    errors = {case.get("name"): case.find("error") for case in cases
              if case.find("error") is not None}
    assert set(errors) == inconclusive and not [c for c in cases if c.find("failure")]
    assert {e.get("type") for e in errors.values()} == {"inconclusive"}
    assert all("min_rows" in e.get("message") for e in errors.values())
    root = ET.parse(tmp_path / "run" / "junit.xml").getroot()
    assert root.get("failures") == "0" and root.get("errors") == str(len(inconclusive))
    assert all(s.get("name").endswith(".inconclusive") for s in root
               if s.find("testcase/error") is not None)


# -- data checks ----------------------------------------------------------------------

def test_warning_expectations_and_production_mix_are_reported_not_fatal(tmp_path, scored_rows):
    extra = tmp_path / "checks.yaml"
    extra.write_text("expectations:\n  - type: expect_column_values_to_be_in_set\n"
                     "    kwargs: {column: brand, value_set: [Lumen Bank]}\n"
                     "    severity: warning\n")
    mix = {"column": "content_type", "shares": {"headline": 0.9}, "tolerance": 0.05}
    sample = {"path": str(tmp_path / "sample.parquet"), "production_mix": mix}
    slices = [str(ROOT / "slices" / "content_types.yaml"), str(extra)]
    code, summary, result = gate_run(tmp_path, same_as_reference(scored_rows), sample=sample,
                                     slices=slices, gate=LENIENT_GATE)
    assert code == 0, result.output
    failing = {c["expectation"]: c for c in summary["data_checks"] if c["status"] == "fail"}
    assert failing["expect_column_values_to_be_in_set"]["severity"] == "warning"
    assert failing["production_mix_share"]["severity"] == "warning"
    assert failing["production_mix_share"]["kwargs"]["value"] == "headline"

    strict = {**sample, "production_mix": {**mix, "severity": "error"}}
    code, _, result = gate_run(tmp_path, same_as_reference(scored_rows), out="strict",
                               sample=strict, slices=slices)
    assert code == 2 and "production_mix_share" in result.stderr
    assert not (tmp_path / "strict").exists()


# -- the run directory ----------------------------------------------------------------

def broken_report(*args, **kwargs):
    raise RuntimeError("the template broke")


def test_a_failure_while_writing_the_report_leaves_no_summary(tmp_path, scored_rows,
                                                              monkeypatch):
    monkeypatch.setattr("validator.outputs.render_html", broken_report)
    code, summary, result = gate_run(tmp_path, same_as_reference(scored_rows))
    assert code == 2 and "the template broke" in result.stderr
    assert summary is None and not (tmp_path / "run").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.")]  # no leftovers


def test_force_replaces_a_run_only_once_the_new_one_is_complete(tmp_path, scored_rows,
                                                                 monkeypatch):
    frame = same_as_reference(scored_rows)
    code, first, _ = gate_run(tmp_path, frame, gate=LENIENT_GATE)
    assert code == 0
    before = (tmp_path / "run" / "summary.json").read_text()
    with monkeypatch.context() as patch:
        patch.setattr("validator.outputs.render_html", broken_report)
        code, _, _ = gate_run(tmp_path, frame, "--force")
    assert code == 2 and (tmp_path / "run" / "summary.json").read_text() == before
    code, second, _ = gate_run(tmp_path, degrade_headlines(frame.copy(), share=0.05),
                               "--force")
    assert code == 1 and second["verdict"] == "fail"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(
        ["summary.json", "predictions.parquet", "junit.xml", "summary.md", "report.html",
         ".slice-validator-run.json"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.")]


# -- Ctrl-C ---------------------------------------------------------------------------

def test_ctrl_c_while_the_forkserver_imports_prints_only_interrupted(tmp_path):
    """Ctrl-C reaches the terminal's whole process group, the forkserver included,
    which is importing the runtimes in the run's first seconds: still exit 2 and
    ``error: interrupted`` alone, no traceback, no scorer files left behind."""
    import psutil

    (tmp_path / "tmp").mkdir()
    config = {"sample": {"path": str(SAMPLE)},
              "rubric": {"scale": [1, 5],
                         "dimensions": {d: [f"{d}_r1", f"{d}_r2"] for d in DIMENSIONS}},
              "slices": [str(ROOT / "slices" / "content_types.yaml")],
              "reference": {"name": "tiny", "backend": "transformers",
                            "model": str(tiny_model_dir(tmp_path / "model"))},
              "candidates": [{"name": "int8", "from": "reference",
                              "recipe": "torch-int8-dynamic"}]}
    (tmp_path / "gate.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != "SLICE_VALIDATOR_SERVING_PROBE"}
    env.update(SLICE_VALIDATOR_CACHE=str(tmp_path / "cache"), TMPDIR=str(tmp_path / "tmp"))
    process = subprocess.Popen(
        [sys.executable, "-m", "validator", "run", "--config", str(tmp_path / "gate.yaml"),
         "--out", str(tmp_path / "run"), "--quiet"], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    def forkserver_started() -> bool:
        for child in psutil.Process(process.pid).children():
            try:
                if "forkserver" in " ".join(child.cmdline()):
                    return True
            except psutil.Error:  # a short-lived child (lscpu, git) already gone
                pass
        return False

    deadline = time.monotonic() + 120
    while not forkserver_started():
        assert process.poll() is None and time.monotonic() < deadline, "no forkserver"
        time.sleep(0.01)
    time.sleep(0.8)  # into its imports (about 2 s): not before Python handles SIGINT
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C does
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, stderr
    assert stderr.strip().splitlines() == ["error: interrupted"], stderr
    time.sleep(3)  # the forkserver ends once the run has gone
    assert not [p for p in (tmp_path / "tmp").iterdir() if "slice-validator" in p.name]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_mid_scoring_leaves_the_cache_usable(tmp_path, stop):
    """SIGINT (Ctrl-C) or SIGTERM (a cancelled CI job) to a real run once the first
    prediction chunk is on disk: exit 2, no run directory; the re-run resumes from the
    cache and equals an uncached run."""
    frame = pd.read_csv(SAMPLE).head(3000)  # chunks of 512: SIGINT lands before the end
    frame = frame.assign(**{f"{d}_candidate": frame[f"{d}_r1"] for d in DIMENSIONS})
    frame.to_parquet(tmp_path / "sample.parquet", index=False)
    config = {"sample": {"path": str(tmp_path / "sample.parquet")},
              "rubric": {"scale": [1, 5],
                         "dimensions": {d: [f"{d}_r1", f"{d}_r2"] for d in DIMENSIONS}},
              "slices": [str(ROOT / "slices" / "content_types.yaml")],
              "reference": {"name": "tiny", "backend": "transformers", "batch_size": 64,
                            "model": str(tiny_model_dir(tmp_path / "model")),
                            "max_length": 64},
              "candidates": [{"name": "raters", "backend": "columns",
                              "columns": "{dimension}_candidate"}],
              "gate": {"on_inconclusive": "warn", "bootstrap_resamples": 100}}
    (tmp_path / "gate.yaml").write_text(yaml.safe_dump(config))
    cache = tmp_path / "cache"
    env = {**os.environ, "SLICE_VALIDATOR_CACHE": str(cache)}

    def command(out: str, *extra: str) -> list[str]:
        return [sys.executable, "-m", "validator", "run", "--config",
                str(tmp_path / "gate.yaml"), "--out", str(tmp_path / out), "--quiet", *extra]

    process = subprocess.Popen(command("interrupted"), cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list(cache.glob("predictions/*/*.npz")) and process.poll() is None:
        assert time.monotonic() < deadline, "no prediction chunk was written"
        time.sleep(0.02)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in stderr
    assert not (tmp_path / "interrupted").exists()

    resumed = subprocess.run(command("resumed"), cwd=ROOT, env=env, text=True,
                             capture_output=True, timeout=600)
    assert resumed.returncode in (0, 1), resumed.stderr
    fresh = subprocess.run(command("fresh", "--no-cache"), cwd=ROOT, env=env, text=True,
                           capture_output=True, timeout=600)
    assert fresh.returncode == resumed.returncode, fresh.stderr
    reference = json.loads((tmp_path / "resumed" / "summary.json").read_text())["scorers"][0]
    assert 0 < reference["rows_from_cache"] < len(frame)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "resumed" / "predictions.parquet"),
                                  pd.read_parquet(tmp_path / "fresh" / "predictions.parquet"))
