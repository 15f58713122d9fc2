"""Routed candidates (columns backend): predictions per row from the routed-to scorer,
the serving Router agreeing with the gate, route validation, and the cost of a mix."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import DIMENSIONS, ROOT, columns_config, run_cli
from validator.config import ProductionMix, load_config, parse_config
from validator.speed.mix import deployment_cost, mix_speed, row_weights, traffic
from validator.errors import ConfigError
from validator.routing import Router, build_routers
from validator.data.slices import load_slices

ROUTE = [{"slice": "high_stakes", "to": "ref"}, {"slice": "short_copy", "to": "ref"},
         {"default": "cand"}]


@pytest.fixture(scope="module")
def routed_run(tmp_path_factory, scored_rows):
    tmp = tmp_path_factory.mktemp("routed")
    frame = scored_rows.copy()
    rng = np.random.default_rng(3)
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"] + rng.normal(0, 0.6, len(frame))
    config = columns_config(tmp, frame, slices=[str(ROOT / "slices")],
                            candidates=[{"name": "cand", "backend": "columns",
                                         "columns": "{dimension}_cand"},
                                        {"name": "routed", "route": ROUTE}])
    result = run_cli("run", "--config", str(config), "--out", str(tmp / "out"), "--quiet")
    assert result.returncode == 1, result.stderr
    return config, tmp / "out"


def test_routed_predictions_are_the_routed_to_scorers(routed_run):
    _, out = routed_run
    table = pd.read_parquet(out / "predictions.parquet")
    fallback = table["slice:high_stakes"] | table["slice:short_copy"]
    assert 0.1 < fallback.mean() < 0.5
    for d in DIMENSIONS:
        expected = np.where(fallback, table[f"ref:{d}"], table[f"cand:{d}"])
        assert np.array_equal(table[f"routed:{d}"].to_numpy(), expected)
    assert (table["route:routed"] == np.where(fallback, "ref", "cand")).all()
    summary = json.loads((out / "summary.json").read_text())
    routed = next(s for s in summary["scorers"] if s["name"] == "routed")
    assert routed["backend"] == "route"
    assert routed["traffic"]["ref"] == pytest.approx(
        table.loc[fallback, "traffic_weight"].sum())
    checks = [c for c in summary["checks"] if c["candidate"] == "routed"]
    assert len(checks) == len(summary["slices"]) * (len(DIMENSIONS) + 1)
    # the fallback slices are the reference itself: nothing degrades there
    assert all(c["degradation"] == 0 for c in checks if c["slice"] == "high_stakes")


def test_router_from_a_routing_file_agrees_row_by_row(routed_run, tmp_path):
    config_path, out = routed_run
    config = load_config(config_path)
    router = build_routers(config, load_slices(config.slices).slices)["routed"]
    routing_file = tmp_path / "routing.yaml"
    routing_file.write_text(router.dump())
    served = Router.from_file(routing_file)
    table = pd.read_parquet(out / "predictions.parquet")
    sample = pd.read_parquet(config.sample.path).set_index("id").loc[table["id"]]
    records = sample.reset_index().to_dict(orient="records")
    chosen = [served.choose({k: v for k, v in r.items() if not k.endswith(("_r1", "_r2"))})
              for r in records]
    assert chosen == table["route:routed"].tolist()
    assert served.route_rows(sample.reset_index()).tolist() == chosen


def test_router_imports_without_torch():
    code = ("import sys, validator.routing; "
            "assert 'torch' not in sys.modules and 'great_expectations' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_router_refuses_a_request_missing_a_routing_column(routed_run):
    config = load_config(routed_run[0])
    router = build_routers(config, load_slices(config.slices).slices)["routed"]
    assert router.choose({"text": "Buy now", "high_stakes": False}) == "ref"  # short copy
    assert router.choose({"text": " ".join(["word"] * 9), "high_stakes": False}) == "cand"
    with pytest.raises(ConfigError, match=r"the request lacks 'high_stakes', read by rules\[0\]"):
        router.choose({"text": "Buy now"})


def _config(tmp_path, route, **sample):
    raw = {"sample": {"path": "s.csv", **sample},
           "rubric": {"dimensions": {d: [f"{d}_r1", f"{d}_r2"] for d in DIMENSIONS}},
           "slices": [str(ROOT / "slices")],
           "reference": {"name": "ref", "backend": "columns", "columns": "{dimension}_ref"},
           "candidates": [{"name": "cand", "backend": "columns", "columns": "{dimension}_c"},
                          {"name": "routed", "route": route}]}
    config = parse_config(raw, "gate.yaml", tmp_path)
    return build_routers(config, load_slices(config.slices).slices)


@pytest.mark.parametrize("route, sample, message", [
    ([{"slice": "headlines", "to": "fp16"}, {"default": "cand"}], {},
     "gate.yaml: candidates[1].route[0]: unknown scorer 'fp16'"),
    ([{"slice": "headlines", "to": "ref"}], {}, "candidates[1].route: the route has no default"),
    ([{"default": "cand"}, {"slice": "headlines", "to": "ref"}], {},
     "candidates[1].route[0]: the default rule stands alone and comes last"),
    ([{"slice": "headlinez", "to": "ref"}, {"default": "cand"}], {},
     "candidates[1].route[0].slice: unknown slice 'headlinez'"),
    ([{"slice": "headlines", "to": "routed"}, {"default": "cand"}], {},
     "candidates[1].route[0]: routing cycle routed -> routed"),
    ([{"slice": "shouting", "to": "ref"}, {"default": "cand"}],
     {"serving_columns": ["content_type"]},
     "candidates[1].route[0].slice: slice 'shouting' reads 'text'"),
    ([{"slice": "high_stakes", "to": "ref"}, {"default": "cand"}],
     {"serving_columns": ["content_type", "channel"]},
     "slice 'high_stakes' reads 'high_stakes', which is not in sample.serving_columns"),
])
def test_bad_routes_name_the_rule(tmp_path, route, sample, message):
    if "reads 'text'" in message:  # the text and its derived columns are always servable
        routers = _config(tmp_path, route, **sample)
        assert routers["routed"].targets == ["ref", "cand"]
        return
    with pytest.raises(ConfigError) as error:
        _config(tmp_path, route, **sample)
    assert message in str(error.value)


def test_a_slice_reading_a_rating_column_cannot_route(tmp_path):
    extra = tmp_path / "rated.yaml"
    extra.write_text("slices:\n  - name: well_rated\n    where: {compliance_r1: {min: 4}}\n")
    raw = yaml.safe_load(yaml.safe_dump({
        "sample": {"path": "s.csv"},
        "rubric": {"dimensions": {d: [f"{d}_r1", f"{d}_r2"] for d in DIMENSIONS}},
        "slices": [str(extra)],
        "reference": {"name": "ref", "backend": "columns", "columns": "{dimension}_ref"},
        "candidates": [{"name": "routed", "route": [{"slice": "well_rated", "to": "ref"},
                                                    {"default": "ref"}]}]}))
    config = parse_config(raw, "gate.yaml", tmp_path)
    with pytest.raises(ConfigError, match=r"candidates\[0\].route\[0\].slice: slice "
                                          r"'well_rated' reads 'compliance_r1', a rating"):
        build_routers(config, load_slices(config.slices).slices)


def test_a_cycle_through_two_routes_is_refused(tmp_path):
    raw = {"sample": {"path": "s.csv"}, "rubric": {"dimensions": {"clarity": "clarity"}},
           "reference": {"name": "ref", "backend": "columns", "columns": "{dimension}_ref"},
           "candidates": [{"name": "a", "route": [{"slice": "x", "to": "b"}, {"default": "ref"}]},
                          {"name": "b", "route": [{"default": "a"}]}]}
    with pytest.raises(ConfigError, match=r"candidates\[1\].route\[0\]: routing cycle a -> b -> a"):
        parse_config(raw, "gate.yaml", tmp_path)


def test_traffic_follows_the_production_mix():
    frame = pd.DataFrame({"kind": ["a", "a", "a", "b"]})
    mix = ProductionMix(column="kind", shares={"a": 0.5, "b": 0.5})
    weights = row_weights(frame, mix)
    assert weights.tolist() == pytest.approx([1 / 6, 1 / 6, 1 / 6, 0.5])
    assert traffic(np.array(["x", "y", "x", "y"], dtype=object), weights) == pytest.approx(
        {"y": 2 / 3, "x": 1 / 3})
    assert row_weights(frame, None).tolist() == [0.25] * 4


def test_cost_and_speed_of_a_mix():
    scorers = {"fp32": {"latency_ms_p50": 10.0, "latency_ms_p95": 20.0,
                        "throughput_rows_per_s": 100.0, "size_bytes": 400,
                        "parameter_bytes": 300, "peak_rss_bytes": 1000},
               "int8": {"latency_ms_p50": 4.0, "latency_ms_p95": 8.0,
                        "throughput_rows_per_s": 400.0, "size_bytes": 100,
                        "parameter_bytes": 80, "peak_rss_bytes": 900}}
    shares = {"int8": 0.75, "fp32": 0.25}
    speed = mix_speed(shares, scorers)
    assert speed["latency_ms_p50"] == pytest.approx(0.75 * 4 + 0.25 * 10)
    assert speed["throughput_rows_per_s"] == pytest.approx(1 / (0.75 / 400 + 0.25 / 100))
    assert (speed["size_bytes"], speed["peak_rss_bytes"]) == (500, 1000)
    cost = deployment_cost("int8-fb", shares, scorers,
                           {"requests_per_month": 3.6e9, "instance_cost_per_hour": 2.0}, "fp32")
    # fp32 everywhere: 3.6e9 / 100 rows/s = 1e4 hours = 20,000; the mix: 0.4375 of it
    assert cost["reference_monthly_cost"] == pytest.approx(20_000)
    assert cost["monthly_cost"] == pytest.approx(8_750)
    assert cost["instances"] == {"int8": 3, "fp32": 4}  # 1,370 requests/s: 2.6 and 3.4
    assert cost["sentence"] == ("int8-fb with fallback on 25% of traffic: 8,750/month vs "
                                "20,000 for fp32 on all traffic, saves 11,250")
    small = deployment_cost("int8-fb", shares, scorers,
                            {"requests_per_month": 5e6, "instance_cost_per_hour": 2.0}, "fp32")
    # 27.78 vs 12.15: whole units would read "12 vs 28, saves 16"; cents add up
    assert small["sentence"].endswith("12.15/month vs 27.78 for fp32 on all traffic, "
                                      "saves 15.63")


def test_max_concentration_fails_a_slice_whose_loss_sits_in_one_dimension(tmp_path,
                                                                           scored_rows):
    frame = scored_rows.copy()
    for d in DIMENSIONS:
        frame[f"{d}_cand"] = frame[f"{d}_ref"]
    headline = frame.content_type == "headline"
    noise = np.random.default_rng(5).normal(0, 0.8, int(headline.sum()))
    frame.loc[headline, "compliance_cand"] += noise  # loss in one dimension, headlines only
    gate = {"metric": "exact_agreement", "max_drop": 50.0, "allow_wide_max_drop": True,
            "min_rows": 50, "max_concentration": 0.8}
    on = run_cli("run", "--config", str(columns_config(tmp_path, frame, gate=gate)),
                 "--out", str(tmp_path / "on"), "--quiet")
    assert on.returncode == 1, on.stderr
    checks = json.loads((tmp_path / "on" / "summary.json").read_text())["checks"]
    failed = [c for c in checks if c["verdict"] == "fail"]
    # every check is within max_drop: only the concentration fails these two slices
    assert all(c["degradation"] <= 50 for c in checks)
    assert {(c["slice"], c["dimension"]) for c in failed} == {("headlines", "_all"),
                                                            ("all", "_all")}
    assert "loss concentrated in compliance" in failed[0]["reason"]
    assert (tmp_path / "on" / "report.html").is_file()
