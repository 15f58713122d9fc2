"""Discovery end to end with the columns backend: a degradation planted on a combination
no shipped slice describes (SMS texts with a digit) must be found on the search half,
confirmed on the other, written as a loadable slice, and gated by the next run."""

from __future__ import annotations

import json
import shutil
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import DIMENSIONS, ROOT, columns_config, human_mean, reseal, run_cli
from validator.config import DiscoveryConfig
from validator.after.discover import discover
from validator.after.discover_section import discover_in_run
from validator.after.features import build_features, feature_masks
from validator.after.lattice import search
from validator.outputs import write_outputs
from validator.outputs.discovery_view import TEXT_CHARS
from validator.outputs.html import render_html
from validator.outputs.markdown import render_markdown
from validator.record.schema import read_record
from validator.data.slices import assign_slices, load_slices
from validator.data.slices.dsl import evaluate, parse_condition, with_derived_columns


def rounded(x):
    return np.floor(np.clip(x, 1, 5) + 0.5)


def plant(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The candidate moves every rating the reference got right on SMS texts with a
    digit; elsewhere it equals the reference."""
    planted = ((frame.content_type == "sms") & frame.text.str.contains("[0-9]")).to_numpy()
    for d in DIMENSIONS:
        ref = frame[f"{d}_ref"].to_numpy()
        flip = planted & (rounded(ref) == rounded(human_mean(frame, d).to_numpy()))
        cand = ref.copy()
        cand[flip] = np.where(rounded(ref[flip]) >= 3, rounded(ref[flip]) - 1.2,
                              rounded(ref[flip]) + 1.2)
        frame[f"{d}_cand"] = cand
    return frame, planted


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory, scored_rows):
    folder = tmp_path_factory.mktemp("discover")
    frame, planted = plant(scored_rows.copy())
    config = columns_config(folder, frame, discovery={"enabled": True, "min_rows": 20})
    result = run_cli("run", "--config", str(config), "--out", str(folder / "run"), "--quiet")
    assert result.returncode == 1, result.stderr  # the sms slice fails; discovery never exits 2
    return folder, frame, planted


def selected(yaml_path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows each slice of a discovered file selects, through the slice loader."""
    masks = assign_slices(load_slices([yaml_path]), with_derived_columns(frame, "text"))
    return masks.drop(columns="all")


def jaccard(a, b) -> float:
    return float((a & b).sum() / (a | b).sum())


def confirmed_top3_overlap(record: dict, yaml_path: Path, frame, planted) -> float:
    masks = selected(yaml_path, frame)
    top3 = [s["name"] for s in record["slices"] if s["confirmed"]][:3]
    return max((jaccard(masks[name].to_numpy(), planted) for name in top3), default=0.0)


def test_run_time_discovery_finds_and_confirms_the_planted_slice(planted_run):
    folder, frame, planted = planted_run
    yaml_path = folder / "run" / "discovered-slices.yaml"
    record = json.loads(yaml_path.with_suffix(".json").read_text())
    assert record["signal"] == "human ratings"
    assert confirmed_top3_overlap(record, yaml_path, frame, planted) >= 0.5
    best = next(s for s in record["slices"] if s["confirmed"])
    assert best["degradation"] > 10 and best["excess"] > 10
    assert best["p_value_adjusted"] < 0.05 and best["n_search"] >= 20
    assert best["overlap"]["slice"] == "sms"
    text = yaml_path.read_text()
    assert "confirmed on the half it was not found on" in text and "&id" not in text


def test_summary_report_and_markdown_hold_the_discovery(planted_run):
    """Run-time discovery runs before the outputs are written: summary.json's
    ``discovery`` section (its ``where`` conditions select the planted rows), the report
    section with example rows, and the summary.md line, all from one search."""
    folder, frame, planted = planted_run
    run = folder / "run"
    section = json.loads((run / "summary.json").read_text())["discovery"]
    figures = json.loads((run / "discovered-slices.json").read_text())
    assert section["files"] == ["discovered-slices.yaml", "discovered-slices.json"]
    assert section["search_rows"] + section["confirm_rows"] == len(frame)
    keys = ("name", "degradation", "ci_low", "ci_high", "p_value_adjusted", "confirmed")
    assert [[s[k] for k in keys] for s in section["slices"]] == \
        [[s[k] for k in keys] for s in figures["slices"]]
    rows = with_derived_columns(frame, "text")
    where = {s["name"]: evaluate(parse_condition(s["where"], s["name"]), rows)
             for s in section["slices"]}
    top3 = [s for s in section["slices"] if s["confirmed"]][:3]
    assert max(jaccard(where[s["name"]], planted) for s in top3) >= 0.5
    best = top3[0]
    sms = (frame.content_type == "sms").to_numpy()
    assert best["overlap"] == {"slice": "sms",
                               "jaccard": round(jaccard(where[best["name"]], sms), 3)}
    assert 1 <= len(best["examples"]) <= 5
    assert set(best["examples"]) <= set(frame.id[where[best["name"]] & planted])
    assert best["description"].startswith("cand: exact_agreement drops")

    html = (run / "report.html").read_text()
    part = html[html.index('<section id="discovery"'):]
    part = part[:part.index("</section>")]
    assert best["name"] in part and 'id="discovery-confirmed-h">Confirmed (' in part
    first = frame.set_index("id").text[best["examples"][0]]
    assert escape(first, quote=True) in part or escape(first, quote=False) in part
    markdown = (run / "summary.md").read_text()
    assert f"Discovery (human ratings, exact_agreement, dimension _all): {len(top3)} of" \
        in markdown and best["name"] in markdown


def test_discovered_examples_are_escaped_and_capped(planted_run):
    folder, _, _ = planted_run
    summary = read_record(folder / "run" / "summary.json")
    table = pd.read_parquet(folder / "run" / "predictions.parquet")
    example = next(s for s in summary.discovery.slices if s.confirmed).examples[0]
    table.loc[table.id == example, "text"] = "<script>alert(1)</script>" + "x" * 500
    html = render_html(summary, table)
    part = html[html.index('<section id="discovery"'):]
    part = part[:part.index("</section>")]
    assert "<script>alert" not in part and "&lt;script&gt;alert(1)&lt;/script&gt;" in part
    assert "x" * TEXT_CHARS not in part and "x" * 200 + "…" in part
    without = summary.model_copy(update={"discovery": None})  # discovery not enabled
    assert 'id="discovery"' not in render_html(without, table)
    assert "Discovery (" not in render_markdown(without)


def test_a_rerun_replaces_the_discovery_files_and_keeps_other_files(planted_run, tmp_path):
    folder, _, _ = planted_run
    summary = read_record(folder / "run" / "summary.json")
    table = pd.read_parquet(folder / "run" / "predictions.parquet")
    out = tmp_path / "run"
    write_outputs(out, summary, table, {"discovered-slices.yaml": "old"})
    (out / "notes.txt").write_text("mine")
    written = write_outputs(out, summary, table, {"discovered-slices.yaml": "new"})
    assert "discovered-slices.yaml" in written.outputs
    assert (out / "discovered-slices.yaml").read_text() == "new"
    assert (out / "notes.txt").read_text() == "mine"
    assert not list(tmp_path.glob(".run.*"))


def test_discovered_slices_pass_slices_check_and_are_gated_by_the_next_run(planted_run,
                                                                           tmp_path):
    folder, frame, _ = planted_run
    yaml_path = folder / "run" / "discovered-slices.yaml"
    names = list(selected(yaml_path, frame).columns)
    assert names
    check = run_cli("slices", "check", str(yaml_path), "--sample", str(folder / "sample.parquet"))
    assert check.returncode == 0, check.stderr
    assert all(name in check.stdout for name in names)
    config = columns_config(tmp_path, frame, slices=[
        str(ROOT / "slices" / "content_types.yaml"), str(yaml_path)])
    result = run_cli("run", "--config", str(config), "--out", str(tmp_path / "next"), "--quiet")
    assert result.returncode == 1, result.stderr
    summary = json.loads((tmp_path / "next" / "summary.json").read_text())
    gated = {c["slice"] for c in summary["checks"]}
    assert set(names) <= gated
    assert any(c["slice"] == names[0] and c["verdict"] == "fail" for c in summary["checks"])


def copy_run(folder: Path, target: Path, change) -> Path:
    shutil.copytree(folder / "run", target)
    table = pd.read_parquet(target / "predictions.parquet")
    change(table)
    table.to_parquet(target / "predictions.parquet", index=False)
    return reseal(target)


def test_identical_candidate_confirms_nothing(planted_run, tmp_path):
    folder, _, _ = planted_run

    def identical(table):
        for d in DIMENSIONS:
            table[f"cand:{d}"] = table[f"ref:{d}"]

    run = copy_run(folder, tmp_path / "run", identical)
    result = run_cli("discover", str(run), "--min-rows", "20")
    assert result.returncode == 0, result.stderr
    record = json.loads((run / "discovered-slices.json").read_text())
    assert not any(s["confirmed"] for s in record["slices"])
    assert "0 confirmed" in result.stdout
    assert load_slices([run / "discovered-slices.yaml"]).names == ["all"]


def test_label_free_finds_the_planted_slice_on_unrated_rows(planted_run, tmp_path):
    folder, frame, planted = planted_run

    def unrated(table):
        for d in DIMENSIONS:
            table[f"human:{d}"] = np.nan

    run = copy_run(folder, tmp_path / "run", unrated)
    out = tmp_path / "found.yaml"
    result = run_cli("discover", str(run), "--min-rows", "20", "--out", str(out))
    assert result.returncode == 0, result.stderr
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["signal"] == "label-free"
    assert confirmed_top3_overlap(record, out, frame, planted) >= 0.5


def test_search_finds_a_planted_pair_and_nothing_in_a_zero_signal():
    rng = np.random.default_rng(1)
    n = 4000
    frame = pd.DataFrame({"channel": rng.choice(["sms", "email", "web"], n),
                          "brand": rng.choice(["a", "b", "c", "d"], n),
                          "text": rng.choice(["Save 20 now", "hello there friend", "OK"], n)})
    frame = with_derived_columns(frame, "text")
    everything = np.ones(n, dtype=bool)
    features = build_features(frame, ["channel", "brand"], "text", everything)
    masks = feature_masks(features, frame)
    families = np.unique([f.family for f in features], return_inverse=True)[1]
    target = ((frame.channel == "sms") & (frame.brand == "b")).to_numpy()
    sums = np.where(target, rng.binomial(1, 0.5, n), rng.binomial(1, 0.05, n)) * 100.0
    found = search(masks, families, sums, np.ones(n), min_rows=30, max_conditions=2)
    best = masks[:, list(found[0].features)].all(axis=1)
    assert jaccard(best, target) == 1.0
    assert search(masks, families, np.zeros(n), np.ones(n), 30, 2) == []


def test_numeric_bins_partition_the_rows():
    values = pd.Series([0.1, 0.25, 0.25, 0.7, 1.3, 2.0, 2.0, 5.5, np.nan, 3.3] * 10)
    frame = with_derived_columns(pd.DataFrame({"score": values, "text": "x"}), "text")
    features = [f for f in build_features(frame, ["score"], "text", np.ones(100, dtype=bool))
                if f.family == "score"]
    masks = feature_masks(features, frame)
    assert len(features) >= 4 and (masks.sum(axis=1) == 1).all()


def test_run_time_discovery_warns_and_never_raises(planted_run, caplog):
    """A discovery that cannot run leaves the record unchanged and writes nothing."""
    folder, _, _ = planted_run
    summary = read_record(folder / "run" / "summary.json").model_copy(update={"discovery": None})
    table = pd.read_parquet(folder / "run" / "predictions.parquet").drop(columns="text")
    kept, files = discover_in_run(summary, table, folder / "run", DiscoveryConfig(enabled=True))
    assert kept is summary and files == {}
    assert "discovery skipped" in caplog.text and "missing column 'text'" in caplog.text


def test_same_run_same_findings_and_text_features_without_the_sample(planted_run, tmp_path):
    folder, frame, planted = planted_run
    settings = DiscoveryConfig(min_rows=20)
    first = discover(folder / "run", settings)
    assert discover(folder / "run", settings) == first
    assert {"content_type", "channel", "brand"} <= set(first["features"]["columns"])

    run = copy_run(folder, tmp_path / "run", lambda table: None)
    summary = json.loads((run / "summary.json").read_text())
    summary["sample"]["path"] = str(tmp_path / "moved.parquet")
    (run / "summary.json").write_text(json.dumps(summary))
    record = discover(reseal(run), settings)
    assert record["features"]["columns"] == [] and "not found" in record["features"]["note"]
    assert all("content_type" not in json.dumps(s["where"]) for s in record["slices"])
