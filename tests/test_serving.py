"""Serving truth (issue 15): the closed-loop capacity test, the seeded probe, each scorer
measured alone in a fresh process, graph-fusion fallback, and the CPU facts with
``serving.isa``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, columns_config, run_cli, tiny_model_dir
from validator.speed.capacity import GAIN, capacity
from validator.config import ProductionMix
from validator.cpu import ISA_FEATURES, cpu_facts
from validator.speed.profile import PROBE_ROWS, probe_texts


def fixed_cost_server(base: float, per_row: float):
    """A fake model whose batch takes base + per_row x rows seconds (sleeping releases
    the GIL, as a model runtime does)."""
    def serve(texts: list[str]):
        time.sleep(base + per_row * len(texts))
    return serve


def test_capacity_grows_with_micro_batching_and_stops_at_the_slo():
    rps, levels = capacity(fixed_cost_server(0.02, 0.001), ["x"] * 10, batch_size=32,
                           slo_ms=150, seconds=0.3)
    single = levels[0]
    assert single.clients == 1 and single.latency_ms_p95 < 150
    # one client at a time: ~1 / 21 ms; batching queued requests serves several per call
    assert rps > 2 * single.throughput_rps
    assert all(level.clients == 2 ** i for i, level in enumerate(levels))


def saturated_server(per_call: float):
    """A fake model whose cost is fixed per row, so batching gains nothing, holding the
    one core it has (no sleep: the GIL is held, as a CPU-bound runtime holds cores)."""
    def serve(texts: list[str]):
        end = time.perf_counter() + per_call * len(texts)
        while time.perf_counter() < end:
            pass
    return serve


def test_capacity_stops_after_two_doublings_without_gain():
    rps, levels = capacity(saturated_server(0.02), ["x"] * 20, batch_size=32,
                           slo_ms=10_000, seconds=0.3)
    # per-row cost is fixed: more clients cannot go faster, so it stops after two
    # doublings without a 5% gain (scheduling noise on a loaded machine can make a level
    # look faster and buy more doublings), below the 128 clients (four batches) and the
    # SLO it would otherwise run up to
    clients = [level.clients for level in levels]
    assert clients[:3] == [1, 2, 4] and clients[-1] < 128
    rates = [level.throughput_rps for level in levels]
    assert max(rates[-2:]) < GAIN * max(rates[:-2]) or (  # a rule stopped it: no gain
        clients[-1] >= 32 and rates[-1] < GAIN * max(rates[:-1]))  # (from a full batch on)
    assert all(max(rates[i - 2:i]) >= GAIN * max(rates[:i - 2])  # and not earlier
               for i in range(3, len(rates)))
    assert rps == pytest.approx(max(rates))


def test_capacity_is_zero_when_even_one_request_misses_the_slo():
    rps, levels = capacity(fixed_cost_server(0.06, 0.0), ["x"], batch_size=8, slo_ms=30,
                           seconds=0.2)
    assert rps == 0.0 and len(levels) == 1


def test_the_probe_is_seeded_and_stratified_by_the_production_mix():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"kind": rng.choice(["short", "long", "rare"], 2000,
                                             p=[0.895, 0.1, 0.005])})
    texts = [f"{kind} {i}" for i, kind in enumerate(frame.kind)]
    rare = int((frame.kind == "rare").sum())
    mix = ProductionMix(column="kind", shares={"short": 0.45, "long": 0.45, "rare": 0.1})
    first, how = probe_texts(frame, texts, mix, seed=3)
    assert first == probe_texts(frame, texts, mix, seed=3)[0]
    assert first != probe_texts(frame, texts, mix, seed=4)[0]
    assert len(first) == PROBE_ROWS >= 200 and len(set(first)) == len(first)
    kinds = pd.Series([t.split()[0] for t in first]).value_counts().to_dict()
    # every rare row (fewer than its 10% share), the rest split evenly by the mix
    assert kinds["rare"] == rare and abs(kinds["long"] - kinds["short"]) <= 1
    assert "stratified by the production mix of kind (3 strata)" in how


def test_without_a_mix_the_probe_is_stratified_by_content_slice_membership():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"n": rng.integers(0, 1000, 3000)})
    texts = [f"text {i}" for i in range(len(frame))]
    masks = pd.DataFrame({"all": True, "small": frame.n < 100, "tiny": frame.n < 20,
                          "even": frame.n % 2 == 0})
    drawn, how = probe_texts(frame, texts, None, seed=0, masks=masks)
    rows = frame.loc[[int(t.split()[1]) for t in drawn]]
    for name in ("small", "tiny", "even"):  # each slice's share of the sample, within 4 rows
        column = masks.loc[rows.index, name]
        assert abs(column.sum() - masks[name].mean() * PROBE_ROWS) <= 4, name
    assert "membership of the 3 content slices" in how and "strata" in how
    alone, how = probe_texts(frame, texts, None, seed=0)
    assert len(alone) == PROBE_ROWS and "none (no production mix, no slices)" in how


def test_an_architecture_the_optimizer_does_not_know_keeps_the_unfused_graph(tmp_path):
    from validator.scorers.onnx_export import fuse

    source, target = tmp_path / "unfused.onnx", tmp_path / "model.onnx"
    source.write_bytes(b"graph bytes")
    reference = SimpleNamespace(model=SimpleNamespace(config=SimpleNamespace(
        model_type="mamba")))
    record = fuse(reference, source, target)
    assert target.read_bytes() == b"graph bytes" and record["graph_fusions"] == {}
    assert "does not know architecture 'mamba'" in record["fusion_warning"]


def test_a_scorer_is_measured_alone_in_a_fresh_process(tmp_path):
    from validator.speed.isolated import measure

    model = tiny_model_dir(tmp_path / "model")
    spec = {"name": "int8", "backend": "transformers", "path": str(model),
            "recipe": "torch-int8-dynamic", "runtime": "eager", "device": "cpu",
            "batch_size": 4, "max_length": 32}
    texts = [f"short text number {i}" for i in range(20)]
    found = measure(spec, texts, slo_ms=500)
    assert 0 < found["memory_bytes"] < 200e6  # the tiny model and its arenas, not torch
    assert found["latency_ms_p95"] >= found["latency_ms_p50"] > 0
    assert found["throughput_rows_per_s"] > 0 and found["capacity_rps"] > 0
    assert [level["clients"] for level in found["capacity_levels"]][:2] == [1, 2]
    assert found["capacity_levels"][-1]["clients"] <= 16  # four full batches at most


def test_a_scorer_process_that_fails_names_the_scorer_and_its_error(tmp_path):
    from validator.errors import ScoringError
    from validator.speed.isolated import measure

    spec = {"name": "gone", "backend": "transformers", "path": str(tmp_path / "no-model"),
            "recipe": None, "runtime": "eager", "device": "cpu", "batch_size": 4,
            "max_length": 32}
    with pytest.raises(ScoringError, match=r"loading 'gone' failed: .*no-model"):
        measure(spec, ["a text"] * 8, slo_ms=500)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's parent-death signal")
def test_a_scorer_process_ends_when_the_run_that_started_it_is_killed():
    """A run killed without cleanup (kill -9) leaves no measuring process behind."""
    import psutil

    run = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c",
            "import os, time; from validator.speed.isolated import die_with; "
            "die_with(os.getppid()); print('armed', flush=True); time.sleep(120)"],
            stdout=subprocess.PIPE, text=True)
        child.stdout.readline()
        print(child.pid, flush=True)
        time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    child = psutil.Process(int(run.stdout.readline()))
    run.kill()
    run.wait()
    deadline = time.monotonic() + 20
    while child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the measuring process outlived its run"
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's parent-death signal")
def test_a_forked_scorer_process_ends_with_its_run():
    """The real chain: a run killed outright takes its forkserver and the scorer
    processes forked from it with it."""
    import psutil

    run = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import tempfile, time
        from validator.speed.isolated import process_context, serve
        if __name__ == "__main__":
            ours, theirs = process_context().Pipe()
            log, scratch = tempfile.NamedTemporaryFile(), tempfile.mkdtemp()
            child = process_context().Process(target=serve, args=(theirs, log.name, scratch))
            child.start()
            print(child.pid, flush=True)
            time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    child = psutil.Process(int(run.stdout.readline()))
    forkserver = child.parent()
    assert forkserver.pid != run.pid  # forked from the forkserver, not the run
    run.kill()
    run.wait()
    deadline = time.monotonic() + 20
    for process in (child, forkserver):
        while process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, f"{process.pid} outlived its run"
            time.sleep(0.05)


def test_a_killed_scorer_process_leaves_no_files(tmp_path, monkeypatch):
    """Its scratch folder and log belong to the run, which removes them: a process
    killed mid-request cannot."""
    import os
    import signal
    import tempfile

    import psutil

    from validator.errors import ScoringError
    from validator.speed.isolated import ServingProcesses

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    spec = {"name": "int8", "backend": "transformers",
            "path": str(tiny_model_dir(tmp_path / "model")), "recipe": "torch-int8-dynamic",
            "runtime": "eager", "device": "cpu", "batch_size": 4, "max_length": 32}
    with ServingProcesses([f"text {i}" for i in range(20)]) as processes:
        process = processes.of(spec)
        assert [p for p in scratch.iterdir() if p.name.startswith("slice-validator-isolated-")]
        forked = [p for p in psutil.Process().children(recursive=True)
                  if p.ppid() != os.getpid()]  # the forkserver's children
        assert len(forked) == 1
        os.kill(forked[0].pid, signal.SIGKILL)
        with pytest.raises(ScoringError, match=r"measuring 'int8' alone failed: .*signal 9"):
            process.alone(500)
    assert not list(scratch.iterdir())


def test_tampered_speed_caches_are_measured_again_never_read():
    from validator.speed.profile import Speed, cached_rounds, cached_speed
    from validator.speed.rounds import summarize

    good = {"memory_bytes": 10, "latency_ms_p50": 2.0, "capacity_levels": [{"clients": 1}]}
    assert cached_speed(good) == Speed(**good)
    for bad in [None, [], "x", {**good, "latency_ms_p50": "fast"}, {**good, "extra": 1},
                {**good, "capacity_rps": True}, {**good, "capacity_levels": "many"}]:
        assert cached_speed(bad) is None, bad
    rounds = summarize([2.0, 2.1, 1.9], [1.5, 1.6, 1.4], [0.5, 0.6, 0.7], cores=2)
    assert cached_rounds(rounds) == rounds
    for bad in [None, {}, [], {**rounds, "throughput_vs_reference": None},
                {**rounds, "speedup_vs_reference_range": [1.0]},
                {**rounds, "rounds": "3"}, {**rounds, "provisional": "no"}]:
        assert cached_rounds(bad) is None, bad


def test_a_measurement_alone_is_reused_only_for_the_same_scorer_probe_and_slo(
        tmp_path, monkeypatch):
    from validator.speed.profile import isolated_speed

    monkeypatch.delenv("SLICE_VALIDATOR_SERVING_PROBE", raising=False)
    calls = []

    class Process:  # the scorer's fresh process, its measurements counted
        def alone(self, slo_ms):
            calls.append(slo_ms)
            return {"memory_bytes": 1000 + len(calls), "latency_ms_p50": 2.0,
                    "throughput_rows_per_s": 50.0, "capacity_rps": 40.0}

    def processes(texts):
        return SimpleNamespace(texts=texts, of=lambda spec: Process())

    def scorer(fingerprint: str):
        return SimpleNamespace(serving_spec=lambda: {"name": "m"},
                               fingerprint=lambda: fingerprint)

    probe, cache = processes(["a", "b"]), tmp_path / "speed"
    first, cached = isolated_speed(scorer("f1"), probe, 500.0, cache)
    assert not cached and len(calls) == 1
    again, cached = isolated_speed(scorer("f1"), probe, 500.0, cache)
    assert cached and again == first and len(calls) == 1
    for other in [(scorer("f2"), probe, 500.0), (scorer("f1"), processes(["a", "c"]), 500.0),
                  (scorer("f1"), probe, 300.0)]:
        assert not isolated_speed(*other, cache)[1]
    assert len(calls) == 4
    for path in cache.glob("*.json"):
        path.write_text("{not json")  # unreadable: measured again, never trusted
    assert isolated_speed(scorer("f1"), probe, 500.0, cache)[1] is False
    assert isolated_speed(scorer("f1"), probe, 500.0, None)[1] is False  # --no-cache
    assert len(calls) == 6


def test_cpu_facts_name_the_missing_features():
    facts = cpu_facts(["avx2", "amx_int8"])
    assert set(facts["isa"]) <= set(ISA_FEATURES) and facts["cores"] >= 1
    assert facts["missing_isa"] == [f for f in ["avx2", "amx_int8"] if f not in facts["isa"]]
    assert (facts["reason"] is None) == (not facts["missing_isa"])


def test_a_run_on_a_cpu_lacking_a_serving_feature_is_inconclusive(tmp_path, scored_rows):
    present = cpu_facts([])["isa"]
    missing = next((f for f in reversed(ISA_FEATURES) if f not in present), None)
    if missing is None:
        pytest.skip("this CPU has every feature serving.isa can name")
    frame = scored_rows.copy()
    for column in [c for c in frame.columns if c.endswith("_ref")]:
        frame[column.replace("_ref", "_cand")] = frame[column]  # a lossless candidate
    config = columns_config(tmp_path, frame, serving={"isa": [missing]})
    result = run_cli("run", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 1, result.stderr
    assert f"lacks {missing}" in result.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["verdict"] == "inconclusive" and summary["exit_code"] == 1
    assert summary["cpu"]["missing_isa"] == [missing]
    assert summary["cpu"]["model"] and summary["cpu"]["onnxruntime"]
    assert summary["counts"]["fail"] == 0  # the checks alone would not have failed


def test_serving_isa_names_only_known_features(tmp_path, scored_rows):
    config = columns_config(tmp_path, scored_rows, serving={"isa": ["avx1024"]})
    result = run_cli("run", "--config", str(config), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "serving.isa" in result.stderr and "Traceback" not in result.stderr
