"""Mixed precision (``exclude``), ``validator diagnose`` and ``validator repair`` on a
tiny random BERT whose outputs depend on the text (a wide initializer range), so that
INT8 noise flips ratings and every path runs in seconds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import DIMENSIONS, ROOT, SAMPLE, run_cli, tiny_model_dir
from validator.scorers.layers import Layer, kept_record, select, units
from validator.errors import ConfigError

STATIC = {"name": "static", "from": "reference", "recipe": "onnx-int8-static",
          "calibration": {"rows": 150}}
DYNAMIC = {"name": "dynamic", "from": "reference", "recipe": "torch-int8-dynamic"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A failing run (point policy, max_drop 0) of the tiny model and its INT8 twins."""
    root = tmp_path_factory.mktemp("mixed")
    frame = pd.read_csv(SAMPLE)
    pd.concat([frame[frame.split == "validation"].head(400),
               frame[frame.split == "calibration"].head(150)]).to_parquet(
        root / "sample.parquet", index=False)
    model = tiny_model_dir(root / "model", initializer_range=0.3)
    config = {
        "sample": {"path": str(root / "sample.parquet"), "where": {"split": "validation"}},
        "rubric": {"scale": [1, 5],
                   "dimensions": {d: [f"{d}_r1", f"{d}_r2"] for d in DIMENSIONS}},
        "slices": [str(ROOT / "slices" / "content_types.yaml")],
        "reference": {"name": "fp32", "backend": "transformers", "model": str(model),
                      "max_length": 64},
        "candidates": [STATIC, DYNAMIC,
                       {**STATIC, "name": "static-fp32", "exclude": ["*"]},
                       {**DYNAMIC, "name": "dynamic-mixed",
                        "exclude": ["bert.encoder.layer.1.*"]}],
        "gate": {"policy": "point", "max_drop": 0, "min_rows": 10, "correction": "none",
                 "on_inconclusive": "warn", "bootstrap_resamples": 100},
    }
    (root / "gate.yaml").write_text(yaml.safe_dump(config))
    env = {"SLICE_VALIDATOR_CACHE": str(root / "cache")}
    result = run_cli("run", "--config", str(root / "gate.yaml"), "--out", str(root / "run"),
                     "--quiet", env=env)
    assert result.returncode in (0, 1), result.stderr
    return {"root": root, "run": root / "run", "env": env}


def scores(tiny, name: str) -> np.ndarray:
    table = pd.read_parquet(tiny["run"] / "predictions.parquet")
    return table[[f"{name}:{d}" for d in DIMENSIONS]].to_numpy()


def recipe(tiny, name: str) -> dict:
    summary = json.loads((tiny["run"] / "summary.json").read_text())
    return next(s["recipe"] for s in summary["scorers"] if s["name"] == name)


def test_excluding_every_layer_gives_the_reference_back(tiny):
    reference = scores(tiny, "fp32")
    assert np.abs(scores(tiny, "static") - reference).max() > 1e-3  # INT8 moves them
    assert np.abs(scores(tiny, "static-fp32") - reference).max() < 1e-3
    # per encoder layer 8 MatMuls; 3 embedding Gathers; the pooler's Gather and Gemm, the head
    assert recipe(tiny, "static-fp32")["kept_fp32_count"] == 2 * 8 + 3 + 3


def test_the_recipe_record_lists_what_stayed_fp32_and_its_size_cost(tiny):
    record = recipe(tiny, "dynamic-mixed")
    kept = [layer["name"] for layer in record["kept_fp32"]]
    assert kept and all(name.startswith("bert.encoder.layer.1.") for name in kept)
    assert record["exclude"] == ["bert.encoder.layer.1.*"]
    elements = sum(layer["weight_elements"] for layer in record["kept_fp32"])
    assert record["kept_fp32_size_cost_bytes"] == 3 * elements > 0
    assert record["quantized_count"] == 2 * 6 + 2 - len(kept)  # 2 layers x 6 + pooler, head
    assert "exclude" not in recipe(tiny, "dynamic")


def test_a_missing_layer_is_named_and_patterns_match_names_or_modules():
    layers = [Layer("node_MatMul_1", "bert.encoder.layer.0.attention.self.query", "MatMul", 16),
              Layer("node_MatMul_2", "bert.encoder.layer.1.output.dense", "MatMul", 16),
              Layer("node_embedding", "bert.embeddings.word_embeddings", "Gather", 64)]
    assert [x.name for x in select(layers, ("bert.encoder.layer.1.*",), "k")] == \
        ["node_MatMul_2"]
    assert [x.name for x in select(layers, ("node_embedding",), "k")] == ["node_embedding"]
    with pytest.raises(ConfigError, match=r"k.exclude: no layer matches 'nope'"):
        select(layers, ("node_*", "nope"), "k")
    assert kept_record(layers[:1], ("x",))["kept_fp32_size_cost_bytes"] == 48
    blocks = {u.name: u.patterns for u in units(layers, "block")}
    assert blocks == {"bert.encoder.layer.0": ("bert.encoder.layer.0.*",),
                      "bert.encoder.layer.1": ("bert.encoder.layer.1.*",),
                      "bert.embeddings": ("bert.embeddings.*",)}


@pytest.mark.parametrize("candidate", ["static", "dynamic"])
def test_diagnose_ranks_layers_with_the_library_tool_and_adds_a_report_section(tiny,
                                                                              candidate):
    result = run_cli("diagnose", str(tiny["run"]), "--candidate", candidate, "--rows", "8",
                     "--quiet", env=tiny["env"])
    assert result.returncode == 0, result.stderr
    record = json.loads((tiny["run"] / f"diagnose-{candidate}.json").read_text())
    tool = "qdq_loss_debug" if candidate == "static" else "torch.ao.ns._numeric_suite"
    assert tool in record["tool"]
    first = record["slices"][0]["slice"]
    ranked = [e for e in record["layers"] if e["slice"] == first]
    assert [e["rank"] for e in ranked] == list(range(1, len(ranked) + 1))
    measured = [e for e in ranked if e["measured"]]
    assert measured and all(np.isfinite(e["sqnr_db"]) for e in ranked)
    changes = [e["distance_change_search"] for e in measured]
    assert changes == sorted(changes)
    assert (tiny["run"] / f"diagnose-{candidate}.md").is_file()
    assert 'id="layers"' in (tiny["run"] / "report.html").read_text()


def test_repair_confirms_fewer_failing_checks_and_writes_a_recipe(tiny):
    result = run_cli("repair", str(tiny["run"]), "--candidate", "dynamic", "--budget", "4",
                     "--rows", "8", "--quiet", env=tiny["env"])
    assert result.returncode in (0, 1), result.stderr
    record = json.loads((tiny["run"] / "repair-dynamic.json").read_text())
    confirmation = record["confirmation"]
    assert confirmation["original"]["fail"] > 0
    assert confirmation["repaired"]["fail"] < confirmation["original"]["fail"]
    assert result.returncode == (0 if confirmation["verdict"] == "pass" else 1)
    assert confirmation["verdict"] != "pass" or confirmation["repaired"]["fail"] == 0
    steps = record["steps"]
    assert steps[0]["layers_kept"] == 0 and steps[-1]["layers_kept"] > 0
    assert all(s["size_bytes"] and s["latency_ms_p50"] for s in steps)
    snippet = yaml.safe_load((tiny["run"] / "repair-dynamic.candidate.yaml").read_text())
    assert snippet["candidates"][0]["exclude"] == record["exclude"]
    assert "| step |" in (tiny["run"] / "repair-dynamic.md").read_text()


def test_repair_stops_at_a_size_budget_and_never_confirms_a_step_over_it(tiny):
    summary = json.loads((tiny["run"] / "summary.json").read_text())
    original = next(s for s in summary["scorers"] if s["name"] == "dynamic")["size_bytes"]
    limit = f"{original / 1e6 + 0.001:.6f}"  # the original fits, one more fp32 block not
    result = run_cli("repair", str(tiny["run"]), "--candidate", "dynamic", "--budget", "4",
                     "--max-size-mb", limit, "--rows", "8", "--quiet", env=tiny["env"])
    assert result.returncode == 1, result.stderr  # nothing within the budget repairs it
    record = json.loads((tiny["run"] / "repair-dynamic.json").read_text())
    first, over = record["steps"]
    assert first["over_budget"] is None and first["failing_search"] > 0
    assert over["failing_search"] is None and over["over_budget"].startswith("size ")
    assert record["best_step"] == 0 and record["confirmation"]["verdict"] == "fail"
    assert record["budget"] == {"units": 4, "size_mb": float(limit), "latency_ms": None}
    assert "not scored: over budget (size" in result.stdout


def test_routing_and_repair_side_by_side(tmp_path):
    from validator.outputs.after_sections import after_sections

    step = {"step": 1, "added": "bert.encoder.layer.5", "exclude": ["bert.encoder.layer.5.*"],
            "layers_kept": 8, "size_bytes": 29e6, "latency_ms_p50": 20.0, "failing_search": 0}
    repair = {"candidate": "q", "steps": [step], "best_step": 0,
              "confirmation": {"verdict": "pass", "repaired": {"fail": 0}},
              "original": {"size_bytes": 24e6}, "reference": {"size_bytes": 91e6}}
    (tmp_path / "repair-q.json").write_text(json.dumps(repair))
    assert after_sections(tmp_path)["routing_vs_repair"] == []  # recommend has not run
    (tmp_path / "routing.options.json").write_text(json.dumps(
        [{"candidate": "q", "share": 0.25, "confirmation": "fail", "failing": ["a", "b"],
          "cost": None, "routes": [{"slice": "headlines", "to": "fp32"}]}]))
    [row] = after_sections(tmp_path)["routing_vs_repair"]
    assert row["routing"]["routes"] == ["headlines -> fp32"]
    assert row["routing"]["failing"] == 2 and row["repair"]["layers_kept"] == 8
    assert row["repair"]["confirmation"] == "pass" and row["original"]["size_bytes"] == 24e6
