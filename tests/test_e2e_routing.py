"""A routed deployment of the real default scorer: high-stakes and short copy fall back
to fp32, the rest is served by its torch INT8 twin (cached predictions, no re-scoring)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import DIMENSIONS, ROOT, SAMPLE, SERVING_PROBE, run_cli
from validator.config import DEFAULT_CONFIG, load_config
from validator.routing import Router, build_routers
from validator.data.slices import load_slices

pytestmark = pytest.mark.e2e

ROUTE = [{"slice": "high_stakes", "to": "fp32"}, {"slice": "short_copy", "to": "fp32"},
         {"default": "int8-dynamic"}]


@pytest.fixture(scope="module")
def routed_default_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("routed-default")
    raw = copy.deepcopy(DEFAULT_CONFIG)
    raw["sample"]["path"] = str(SAMPLE)
    raw["sample"]["serving_columns"] = ["content_type", "channel", "brand", "language",
                                        "high_stakes"]
    raw["slices"] = [str(ROOT / "slices")]
    raw["candidates"] = [raw["candidates"][0], {"name": "int8-with-fallback", "route": ROUTE}]
    raw["report"] = {"cost": {"requests_per_month": 30_000_000, "instance_cost_per_hour": 0.34}}
    config = tmp / "gate.yaml"
    config.write_text(yaml.safe_dump(raw))
    # the mix's cost needs each scorer's speed, measured alone (off by default in tests)
    result = run_cli("run", "--config", str(config), "--out", str(tmp / "run"), "--quiet",
                     env=SERVING_PROBE)
    assert result.returncode in (0, 1), result.stderr
    return config, tmp / "run"


def test_routed_predictions_are_fp32_on_routed_rows_and_int8_elsewhere(routed_default_run):
    _, out = routed_default_run
    table = pd.read_parquet(out / "predictions.parquet")
    routed = (table["slice:high_stakes"] | table["slice:short_copy"]).to_numpy()
    assert 0.05 < routed.mean() < 0.6
    for d in DIMENSIONS:
        got = table[f"int8-with-fallback:{d}"].to_numpy()
        assert np.array_equal(got[routed], table[f"fp32:{d}"].to_numpy()[routed])
        assert np.array_equal(got[~routed], table[f"int8-dynamic:{d}"].to_numpy()[~routed])
    summary = json.loads((out / "summary.json").read_text())
    mix = next(s for s in summary["scorers"] if s["name"] == "int8-with-fallback")
    assert mix["traffic"]["fp32"] == pytest.approx(table["traffic_weight"][routed].sum())
    deployment = next(d for d in summary["cost"]["deployments"]
                      if d["candidate"] == "int8-with-fallback")
    assert deployment["sentence"].startswith("int8-with-fallback with fallback on ")
    assert 0 < deployment["monthly_cost"] < deployment["reference_monthly_cost"]
    assert deployment["sentence"] in (out / "report.html").read_text()


def test_the_serving_router_agrees_with_the_gate_row_by_row(routed_default_run):
    config_path, out = routed_default_run
    config = load_config(config_path)
    router = build_routers(config, load_slices(config.slices).slices)["int8-with-fallback"]
    served = Router.from_dict(yaml.safe_load(router.dump()), "routing.yaml")
    table = pd.read_parquet(out / "predictions.parquet")
    sample = pd.read_csv(SAMPLE).set_index("id").loc[table["id"]].reset_index()
    fields = ["text", *config.sample.serving_columns]
    chosen = [served.choose(record) for record in sample[fields].to_dict(orient="records")]
    assert chosen == table["route:int8-with-fallback"].tolist()
    assert set(chosen) == {"fp32", "int8-dynamic"}
