"""The embedded default run: the real MiniLM scorer and its torch INT8 twin."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from conftest import DIMENSIONS

pytestmark = pytest.mark.e2e


def test_default_run_decides(default_run):
    result, out = default_run
    assert result.returncode in (0, 1), result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exit_code"] == result.returncode
    assert summary["verdict"] in ("pass", "fail", "inconclusive")
    assert summary["sample"]["rows"] >= 1500
    assert summary["rubric"]["dimensions"] == DIMENSIONS
    assert len([s for s in summary["slices"] if s["name"] != "all"]) >= 8
    assert f"verdict: {summary['verdict'].upper()}" in result.stdout


def test_default_run_measures_both_real_scorers(default_run):
    _, out = default_run
    summary = json.loads((out / "summary.json").read_text())
    reference, torch_int8, onnx_int8, onnx_fp32 = summary["scorers"]
    assert onnx_fp32["recipe"]["name"] == "onnx-fp32" and onnx_fp32["backend"] == "onnxruntime"
    assert reference["role"] == "reference" and reference["backend"] == "transformers"
    # the default traces the reference; the torch candidate runs the same way, ONNX is not torch
    assert (reference["runtime"], torch_int8["runtime"], onnx_int8["runtime"]) == (
        "torchscript", "torchscript", None)
    assert torch_int8["recipe"]["name"] == "torch-int8-dynamic"
    assert onnx_int8["recipe"]["name"] == "onnx-int8-static"
    assert onnx_int8["backend"] == "onnxruntime"
    assert onnx_int8["recipe"]["calibration_rows"] == 2000
    for candidate in (torch_int8, onnx_int8):
        assert candidate["recipe"]["quantized_count"] > 0
        assert candidate["size_bytes"] < reference["size_bytes"]
        assert candidate["latency_ms_p50"] > 0 and candidate["throughput_rows_per_s"] > 0
        checks = [c for c in summary["checks"] if c["candidate"] == candidate["name"]]
        assert len(checks) == len(summary["slices"]) * (len(DIMENSIONS) + 1)
    assert onnx_int8["size_vs_reference"] < 1 / 3.5
    for scorer in (reference, torch_int8, onnx_int8):  # each measured alone (issue 15)
        assert scorer["memory_bytes"] > 0 and scorer["capacity_rps"] is not None
        assert scorer["build_seconds"] > 0 and scorer["score_seconds"] >= 0
    for candidate in (torch_int8, onnx_int8):
        assert candidate["memory_vs_reference"] > 0
    assert onnx_int8["recipe"]["fusion_warning"] is None  # exported as the optimizer knows
    assert summary["speed_probe"]["latency_texts"] >= 200
    assert summary["cpu"]["cores"] >= 1 and summary["cpu"]["onnxruntime"]
    metrics = pd.DataFrame(summary["metrics"])
    overall = metrics[(metrics.slice == "all") & (metrics.dimension == "_all")
                      & (metrics.metric == "exact_agreement")].set_index("scorer").value
    # a trained scorer agrees with humans well above chance (1 in 5) on a 5-point scale
    assert overall["fp32"] > 35 and overall["int8-dynamic"] > 30
    assert overall["onnx-int8-static"] > 30
    table = pd.read_parquet(out / "predictions.parquet")
    assert len(table) == summary["sample"]["rows"]
    # the quantized twin is a different model: its raw scores move
    assert (table["fp32:clarity"] - table["int8-dynamic:clarity"]).abs().max() > 1e-3


def test_default_run_writes_every_output(default_run):
    _, out = default_run
    summary = json.loads((out / "summary.json").read_text())
    suites = ET.parse(out / "junit.xml").getroot()
    assert len(list(suites.iter("testcase"))) == len(summary["checks"])
    html = (out / "report.html").read_text()
    assert summary["verdict"].upper() in html
    for s in summary["slices"]:
        assert s["name"] in html
    assert summary["verdict"].upper() in (out / "summary.md").read_text()


def test_the_near_lossless_candidate_passes_and_the_int8_twins_fail(default_run):
    """Issue 23.6: the default demonstrates a gate that can pass. onnx-fp32 (the
    reference exported, unquantized) fails no check and flips no rounded prediction;
    each INT8 twin fails checks; the pool feeds the design of every slice."""
    _, out = default_run
    summary = json.loads((out / "summary.json").read_text())
    verdicts = {}
    for check in summary["checks"]:
        verdicts.setdefault(check["candidate"], set()).add(check["verdict"])
    assert "fail" not in verdicts["onnx-fp32"] and "pass" in verdicts["onnx-fp32"]
    assert "fail" in verdicts["int8-dynamic"] and "fail" in verdicts["onnx-int8-static"]
    lossless = [c for c in summary["checks"] if c["candidate"] == "onnx-fp32"]
    assert all(c["flip_rate"] == 0 for c in lossless if c["flip_rate"] is not None)
    assert summary["design"]["pool_rows"] > 0 and summary["design"]["rated_rows"] > 0
    assert all(s["pool_rows"] is not None for s in summary["slices"])
    card = (out / "summary.md").read_text()
    assert "onnx-fp32" in card and "Power before work" in card
