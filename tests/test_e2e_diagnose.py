"""On the default run, for each INT8 candidate (ONNX static: ONNX Runtime's QDQ
debugging tools; torch dynamic: the ``torch.ao.ns`` numeric suite): keeping the block
``validator diagnose`` ranks first in fp32 moves the candidate's worst failing slice
toward the reference, on rows the ranking never saw, more than keeping a random block
does (seeded, averaged)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("diagnose") / "run"
    result = run_cli("run", "--out", str(out), "--quiet")
    assert result.returncode in (0, 1), result.stderr
    return out, json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module", params=["onnx-int8-static", "int8-dynamic"])
def diagnosed(request, default_run):
    out, summary = default_run
    candidate = request.param
    failing = [c for c in summary["checks"] if c["candidate"] == candidate
               and c["verdict"] == "fail" and c["slice"] != "all"]
    worst = max(failing, key=lambda c: c["degradation"])
    # every row of the slice: on 50 rows a half, exact agreement moves 2 points a row
    result = run_cli("diagnose", str(out), "--candidate", candidate, "--slice",
                     worst["slice"], "--top", "20", "--rows", "8", "--quiet")
    assert result.returncode == 0, result.stderr
    record = json.loads((out / f"diagnose-{candidate}.json").read_text())
    print(json.dumps(record["layers"], indent=1))  # shown when a test fails
    return record


def test_every_block_is_measured_and_ranked_on_the_search_half(diagnosed):
    units = diagnosed["layers"]
    assert {u["layer"] for u in units} >= {f"bert.encoder.layer.{i}" for i in range(6)}
    assert ("qdq_loss_debug" if diagnosed["recipe"] == "onnx-int8-static"
            else "torch.ao.ns") in diagnosed["tool"]
    assert all(u["measured"] for u in units)
    assert [u["rank"] for u in units] == list(range(1, len(units) + 1))
    assert diagnosed["slices"][0]["rows_confirm"] > 20


def test_the_top_ranked_block_helps_more_than_a_random_block(diagnosed):
    top, *others = diagnosed["layers"]
    draws = np.random.default_rng(0).choice(len(others), size=20)
    for figure in ("distance_change_confirm", "degradation_change_confirm"):
        random_mean = float(np.mean([others[i][figure] for i in draws]))
        assert top[figure] < random_mean, (figure, top, random_mean)
    assert top["distance_change_confirm"] < 0  # toward the reference, on held-out rows
