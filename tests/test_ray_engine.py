"""``execution: {engine: ray}`` on a real local Ray cluster (a head node and a worker
node, each its own raylet and worker processes): the default gate scored by actor
pools gives the local predictions (within 1e-5) and verdicts, the prediction cache is
shared both ways, and a scoring actor killed mid-run is restarted and its calls retried.

To stay within the suite's time budget the gate rows are the first 200 validation rows
of the shipped sample (its calibration rows unchanged, so the cached onnx-int8-static
artefact is reused); every run gets a fresh prediction cache so each one really scores.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import run_cli
from validator.cache import PredictionCache, cache_root, row_keys
from validator.cache_check import lookup
from validator.config import DEFAULT_CONFIG, load_config
from validator.engine import RayEngine
from validator.scorers import Scorer

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.e2e

ROWS = 200
ASSETS = Path(__file__).resolve().parents[1] / "validator" / "assets"


class Reversed(Scorer):
    """A fake scorer that batches its rows 4 at a time, last row first."""

    def predict(self, texts, on_batch=None):
        return np.zeros((len(texts), len(self.dimensions)))

    def batch_order(self, texts):
        return np.arange(len(texts))[::-1], 4


@pytest.fixture(scope="module")
def cluster():
    """A head node with no CPUs and a worker node with two: the actors run on the worker
    node, reached through the head's address as an existing cluster is."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    yield cluster
    if ray.is_initialized():
        ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The default gate on 200 gate rows (the calibration rows as shipped)."""
    folder = tmp_path_factory.mktemp("ray-gate")
    frame = pd.read_csv(ASSETS / "sample.csv")
    gate_rows = frame.index[frame.split == "validation"][:ROWS]
    frame[(frame.split != "validation") | frame.index.isin(gate_rows)].to_csv(
        folder / "sample.csv", index=False)
    return folder


def write_config(project: Path, name: str, candidates: int = 2, **execution) -> Path:
    config = {**DEFAULT_CONFIG, "sample": {**DEFAULT_CONFIG["sample"], "path": "sample.csv"},
              "slices": [str(ASSETS / "slices")],
              "candidates": DEFAULT_CONFIG["candidates"][:candidates],
              "execution": {"engine": "local", **execution}}
    path = project / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def fresh_cache(folder: Path) -> dict:
    """A prediction cache of its own that shares the built models and artefacts."""
    folder.mkdir()
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    (root / "artefacts").mkdir(exist_ok=True)
    for entry in root.iterdir():
        if entry.name != "predictions":
            (folder / entry.name).symlink_to(entry)
    return {"SLICE_VALIDATOR_CACHE": str(folder)}


def run(project: Path, config: Path, out: str, cache: dict) -> tuple[pd.DataFrame, dict]:
    result = run_cli("run", "--config", str(config), "--out", str(project / out), "--quiet",
                     env=cache)
    assert result.returncode in (0, 1), result.stderr
    assert result.stderr == ""  # --quiet: no Ray logs on stderr either
    summary = yaml.safe_load((project / out / "summary.json").read_text())
    return pd.read_parquet(project / out / "predictions.parquet"), summary


def scorer_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.split(":")[0] in ("fp32", "int8-dynamic",
                                                            "onnx-int8-static")]


@pytest.fixture(scope="module")
def local_run(project, tmp_path_factory):
    cache = fresh_cache(tmp_path_factory.mktemp("caches") / "local")
    return run(project, write_config(project, "local"), "local", cache) + (cache,)


def cached(cache: dict, texts: list[str]) -> dict[str, np.ndarray]:
    """Each scorer fingerprint's cached predictions of ``texts`` (all must be there)."""
    folder = Path(cache["SLICE_VALIDATOR_CACHE"])
    found = {}
    for fingerprint in sorted(p.name for p in (folder / "predictions").iterdir()):
        stored = lookup(PredictionCache(folder), fingerprint, row_keys(texts), 7)
        values, hit = stored.values, stored.found
        assert hit.all()
        found[fingerprint] = values
    return found


def test_the_default_gate_on_ray_gives_the_local_predictions_and_verdicts(
        cluster, project, local_run, tmp_path):
    local, local_summary, local_cache = local_run
    config = write_config(project, "ray", engine="ray", address=cluster.address,
                          num_workers=2, batch_size=64)
    cache = fresh_cache(tmp_path / "ray-cache")
    on_ray, summary = run(project, config, "ray", cache)
    columns = scorer_columns(local)
    assert len(columns) == 21 and len(on_ray) == ROWS
    assert np.abs(on_ray[columns].to_numpy() - local[columns].to_numpy()).max() < 1e-5
    assert summary["verdict"] == local_summary["verdict"]
    assert [c["verdict"] for c in summary["checks"]] == \
        [c["verdict"] for c in local_summary["checks"]]
    assert [s["rows_from_cache"] for s in summary["scorers"][:3]] == [0, 0, 0]

    # the cache is shared both ways: the cluster's predictions sit under the fingerprints
    # a local run looks up, and the reverse, with the same values
    texts = local["text"].tolist()
    from_ray, from_local = cached(cache, texts), cached(local_cache, texts)
    assert len(from_ray) == 3 and from_ray.keys() == from_local.keys()
    for fingerprint, values in from_ray.items():
        assert np.abs(values - from_local[fingerprint]).max() < 1e-5


def actor_pids() -> list[int]:
    import psutil

    return [p.pid for p in psutil.Process().children(recursive=True)
            if "ScoringActor" in " ".join(p.cmdline())]


def test_a_killed_scoring_actor_is_retried_and_the_run_completes_identically(
        cluster, project, local_run, tmp_path, monkeypatch):
    import contextlib

    from validator.pipeline import run_gate

    local = local_run[0]
    monkeypatch.setenv("SLICE_VALIDATOR_CACHE", fresh_cache(tmp_path / "cache")
                       ["SLICE_VALIDATOR_CACHE"])
    config = load_config(write_config(project, "kill", candidates=1, engine="ray",
                                      address=cluster.address, num_workers=1, batch_size=32))
    killed = []

    @contextlib.contextmanager
    def killing_progress(description, total):
        def advance(n):
            if description == "scoring fp32" and not killed:
                killed.append(actor_pids()[0])  # mid-run: calls are still queued
                os.kill(killed[0], signal.SIGKILL)
        yield advance

    run_gate(config, tmp_path / "out", killing_progress)  # fp32 and int8-dynamic
    assert killed
    table = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    columns = scorer_columns(table)
    assert len(columns) == 14
    assert np.abs(table[columns].to_numpy() - local[columns].to_numpy()).max() < 1e-5


def test_calls_are_runs_of_whole_batches_in_the_scorers_order():
    from validator.config import ExecutionConfig

    scorer = Reversed("fake", ["a", "b"])
    engine = RayEngine(ExecutionConfig(engine="ray", batch_size=10), "<test>")
    calls = engine.calls(scorer, [str(i) for i in range(19)])
    assert [c.tolist() for c in calls] == [list(range(18, 10, -1)), list(range(10, 2, -1)),
                                           [2, 1, 0]]
