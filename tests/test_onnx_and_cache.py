"""ONNX recipes and backend, `validator quantize`, and the prediction cache, on a tiny
random BERT so that every path runs in seconds."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import DIMENSIONS, ROOT, SAMPLE, SERVING_PROBE, run_cli, tiny_model_dir
from validator.cache import MANIFEST
from validator.speed.rounds import ROUNDS


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    frame = pd.read_csv(SAMPLE)
    subset = pd.concat([frame[frame.split == "validation"].head(240),
                        frame[frame.split == "calibration"].head(150)])
    subset.to_parquet(root / "sample.parquet", index=False)
    return {"root": root, "model": tiny_model_dir(root / "model"),
            "env": {"SLICE_VALIDATOR_CACHE": str(root / "cache")}}


def write_config(tiny, name: str, candidates: list[dict], **sample) -> str:
    config = {
        "sample": {"path": str(tiny["root"] / "sample.parquet"),
                   "where": {"split": "validation"}, **sample},
        "rubric": {"scale": [1, 5],
                   "dimensions": {d: [f"{d}_r1", f"{d}_r2"] for d in DIMENSIONS}},
        "slices": [str(ROOT / "slices" / "content_types.yaml")],
        "reference": {"name": "fp32", "backend": "transformers", "model": str(tiny["model"]),
                      "max_length": 64},
        "candidates": candidates,
        "gate": {"min_rows": 10, "on_inconclusive": "warn"},
    }
    path = tiny["root"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


STATIC = {"name": "onnx-int8-static", "from": "reference", "recipe": "onnx-int8-static",
          "calibration": {"rows": 150}}


def run(tiny, config: str, out: str, *extra: str, cache: str | None = None,
        env: dict | None = None):
    env = {**({"SLICE_VALIDATOR_CACHE": str(tiny["root"] / cache)} if cache else tiny["env"]),
           **(env or {})}
    result = run_cli("run", "--config", config, "--out", str(tiny["root"] / out), "--quiet",
                     *extra, env=env)
    assert result.returncode in (0, 1), result.stderr
    summary = json.loads((tiny["root"] / out / "summary.json").read_text())
    table = pd.read_parquet(tiny["root"] / out / "predictions.parquet")
    return summary, table


def test_quantize_output_gates_with_the_same_predictions_as_the_in_run_recipe(tiny):
    config = write_config(tiny, "static", [STATIC])
    shipped = tiny["root"] / "shipped-int8"
    result = run_cli("quantize", "--config", config, "--recipe", "onnx-int8-static",
                     "--out", str(shipped), "--quiet", env=tiny["env"])
    assert result.returncode == 0, result.stderr
    assert (shipped / "model.onnx").is_file() and (shipped / "recipe.json").is_file()
    assert not (shipped / MANIFEST).exists()  # the cache's manifest is not shipped
    both = write_config(tiny, "both", [STATIC, {"name": "shipped", "backend": "onnxruntime",
                                                "model": str(shipped)}])
    summary, table = run(tiny, both, "both")
    # the shipped file, scored from disk by ONNX Runtime (no cache), gives the predictions
    # the in-run recipe gave
    alone = write_config(tiny, "shipped-alone", [{"name": "shipped", "backend": "onnxruntime",
                                                  "model": str(shipped)}])
    from_disk, disk_table = run(tiny, alone, "shipped-alone", "--no-cache")
    assert from_disk["scorers"][1]["rows_scored"] == from_disk["sample"]["rows"]
    for d in DIMENSIONS:
        np.testing.assert_array_equal(table[f"onnx-int8-static:{d}"], disk_table[f"shipped:{d}"])
    recipes = {s["name"]: s["recipe"] for s in summary["scorers"]}
    assert recipes["shipped"]["calibration_rows"] == 150
    assert recipes["onnx-int8-static"]["quantized_count"] > 0
    assert "QuantizeLinear" in recipes["onnx-int8-static"]["quantized_op_types"]


def corrupt_one_weight(onnx_file) -> None:
    """Negate the int8 classifier weight of a quantized model: the file still loads and
    runs, and computes something else."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_file))
    weights = [i for i in model.graph.initializer
               if i.name.endswith("classifier.weight_quantized")]
    assert weights, [i.name for i in model.graph.initializer]
    values = numpy_helper.to_array(weights[0])
    assert values.dtype == np.int8 and values.any()
    weights[0].CopyFrom(numpy_helper.from_array(-np.maximum(values, -127), weights[0].name))
    onnx.save(model, str(onnx_file))


def test_the_gate_scores_the_shipped_bytes_not_the_predictions_cached_by_name(tiny):
    folder = onnx_copy(tiny, "shipped-corrupted")
    corrupt_one_weight(f"{folder}/model.onnx")
    config = write_config(tiny, "corrupted", [STATIC, {"name": "shipped", "backend":
                                                       "onnxruntime", "model": folder}])
    summary, table = run(tiny, config, "corrupted")
    shipped = summary["scorers"][2]
    assert shipped["rows_from_cache"] == 0
    assert shipped["fingerprint"] != summary["scorers"][1]["fingerprint"]
    assert any(np.abs(table[f"onnx-int8-static:{d}"] - table[f"shipped:{d}"]).max() > 1e-3
               for d in DIMENSIONS)


def test_a_tampered_cached_artefact_is_rebuilt_not_used(tiny):
    config = write_config(tiny, "tamper", [STATIC])
    _, before = run(tiny, config, "tamper-a")
    artefacts = tiny["root"] / "cache" / "artefacts"
    [folder] = [p for p in artefacts.glob("onnx-int8-static-*") if p.is_dir()]
    assert (folder / MANIFEST).is_file()
    corrupt_one_weight(folder / "model.onnx")
    tampered = (folder / "model.onnx").read_bytes()
    _, after = run(tiny, config, "tamper-b")
    pd.testing.assert_frame_equal(before, after)
    assert (folder / "model.onnx").read_bytes() != tampered


def test_prediction_fingerprint_covers_batch_size_device_versions_and_cpu(tiny, monkeypatch):
    from validator.config import ScorerConfig
    from validator.scorers.transformers_backend import load_transformers_scorer

    for override in ("FBGEMM_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY"):
        monkeypatch.delenv(override, raising=False)  # the base: this CPU's own kernels

    def fingerprint(**settings):
        scorer_config = ScorerConfig.model_validate(
            {"name": "m", "backend": "transformers", "model": str(tiny["model"]), **settings})
        return load_transformers_scorer(scorer_config, DIMENSIONS, (1, 5)).fingerprint()

    base = fingerprint()
    assert fingerprint(batch_size=8) != base
    assert fingerprint(runtime="torchscript") != base
    import transformers

    import validator.cache

    for module in (validator.cache, transformers):  # the harness's, then a library's
        real_version = module.__version__
        monkeypatch.setattr(module, "__version__", "0.0.0-other")
        assert fingerprint() != base
        monkeypatch.setattr(module, "__version__", real_version)
    assert fingerprint() == base
    monkeypatch.setenv("FBGEMM_ENABLE_INSTRUCTIONS", "AVX2")  # INT8 kernels as on AVX2
    assert fingerprint() != base
    monkeypatch.delenv("FBGEMM_ENABLE_INSTRUCTIONS")
    monkeypatch.setattr("validator.cpu._cpuinfo", lambda: ("other", {"avx2"}))
    assert fingerprint() != base


def test_every_recipe_runs_and_is_profiled(tiny):
    candidates = [{"name": r, "from": "reference", "recipe": r}
                  for r in ("torch-int8-dynamic", "torch-bf16", "onnx-fp32", "onnx-int8-dynamic")]
    summary, table = run(tiny, write_config(tiny, "all-recipes", candidates), "all-recipes",
                         env=SERVING_PROBE)
    reference = summary["scorers"][0]
    assert (reference["device"], reference["dtype"]) == ("cpu", "float32")
    for scorer in summary["scorers"][1:]:
        assert scorer["recipe"]["name"] == scorer["name"]
        assert scorer["device"] == "cpu" and scorer["comparison"] == "same device (cpu)"
        assert scorer["latency_ms_p50"] > 0 and scorer["throughput_rows_per_s"] > 0
        assert scorer["tokenize_rows_per_s"] > 0 and scorer["forward_rows_per_s"] > 0
        # speed ratios: interleaved rounds against the reference, median within its range
        low, high = scorer["throughput_vs_reference_range"]
        assert scorer["ratio_rounds"] == ROUNDS and low <= scorer["throughput_vs_reference"] <= high
        low, high = scorer["speedup_vs_reference_range"]
        assert low <= scorer["speedup_vs_reference"] <= high
        assert scorer["ratio_provisional"] == (scorer["ratio_load_average_max"]
                                               > summary["cpu"]["cores"])
        assert scorer["peak_rss_bytes"] > 0 and scorer["parameter_bytes"] > 0
        # measured alone in a fresh process: memory, capacity, build and score time
        assert scorer["memory_bytes"] > 0 and scorer["capacity_rps"] > 0
        assert scorer["memory_vs_reference"] == pytest.approx(
            scorer["memory_bytes"] / reference["memory_bytes"])
        assert scorer["build_seconds"] > 0 and scorer["score_seconds"] > 0
        assert scorer["capacity_levels"][0]["clients"] == 1
    # the ONNX graphs are fused: one Attention per layer of the tiny BERT
    for name in ("onnx-fp32", "onnx-int8-dynamic"):
        recipe = next(s["recipe"] for s in summary["scorers"] if s["name"] == name)
        assert recipe["graph_fusions"]["Attention"] == 2 and recipe["fusion_warning"] is None
    # the fp32 export computes the same function as the reference
    np.testing.assert_allclose(table["onnx-fp32:clarity"], table["fp32:clarity"], atol=1e-4)
    sizes = {s["name"]: s["size_bytes"] for s in summary["scorers"]}
    assert sizes["onnx-int8-dynamic"] < sizes["onnx-fp32"] / 2
    dtypes = {s["name"]: s["dtype"] for s in summary["scorers"]}
    assert (dtypes["torch-bf16"], dtypes["torch-int8-dynamic"]) == ("bfloat16", "int8")


def test_rerun_with_only_the_candidate_changed_rescores_only_the_candidate(tiny):
    first = [{"name": "int8", "from": "reference", "recipe": "torch-int8-dynamic"}]
    run(tiny, write_config(tiny, "first", first), "first", cache="fresh-cache")
    second = [{"name": "bf16", "from": "reference", "recipe": "torch-bf16"}]
    summary, _ = run(tiny, write_config(tiny, "second", second), "second", cache="fresh-cache")
    reference, candidate = summary["scorers"]
    assert reference["rows_from_cache"] == summary["sample"]["rows"]
    assert reference["rows_scored"] == 0
    assert candidate["rows_from_cache"] == 0


def test_corrupt_cache_entry_is_recomputed_not_used(tiny):
    config = write_config(tiny, "corrupt", [{"name": "int8", "from": "reference",
                                             "recipe": "torch-int8-dynamic"}])
    summary, before = run(tiny, config, "corrupt-a")
    fingerprint = summary["scorers"][0]["fingerprint"]
    chunks = sorted((tiny["root"] / "cache" / "predictions" / fingerprint).glob("*.npz"))
    assert chunks
    data = bytearray(chunks[0].read_bytes())
    data[-20] ^= 0xFF
    chunks[0].write_bytes(bytes(data))
    summary, after = run(tiny, config, "corrupt-b")
    assert summary["scorers"][0]["rows_scored"] > 0
    pd.testing.assert_frame_equal(before, after)


def test_no_cache_neither_reads_nor_writes(tiny):
    config = write_config(tiny, "nocache", [{"name": "int8", "from": "reference",
                                             "recipe": "torch-int8-dynamic"}])
    cache = tiny["root"] / "cache" / "predictions"
    entries = sorted(p for p in cache.rglob("*.npz")) if cache.exists() else []
    summary, _ = run(tiny, config, "nocache", "--no-cache")
    assert all(s["rows_from_cache"] == 0 for s in summary["scorers"])
    assert sorted(p for p in cache.rglob("*.npz")) == entries


def expect_exit_2(tiny, config: str, *fragments: str, command: str = "run"):
    args = ["--config", config, "--quiet"]
    if command == "run":
        args += ["--out", str(tiny["root"] / "should-not-exist")]
    result = run_cli(command, *args, env=tiny["env"])
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


def onnx_copy(tiny, name: str) -> str:
    """A private copy of the shipped artefact (written by the quantize test, or now)."""
    source = tiny["root"] / "shipped-int8"
    if not source.exists():
        run_cli("quantize", "--config", write_config(tiny, "static", [STATIC]), "--recipe",
                "onnx-int8-static", "--out", str(source), "--quiet", env=tiny["env"])
    target = tiny["root"] / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    return str(target)


def onnx_candidate(tiny, name: str, model: str) -> str:
    return write_config(tiny, name, [{"name": "served", "backend": "onnxruntime",
                                      "model": model}])


def test_missing_onnx_model(tiny):
    expect_exit_2(tiny, onnx_candidate(tiny, "missing", str(tiny["root"] / "nope.onnx")),
                  "nope.onnx", "not found")


def test_corrupt_onnx_model(tiny):
    folder = onnx_copy(tiny, "corrupt-onnx")
    with open(f"{folder}/model.onnx", "r+b") as handle:
        handle.truncate(1000)
    expect_exit_2(tiny, onnx_candidate(tiny, "corrupt-onnx", folder),
                  "model.onnx", "cannot load the ONNX model")


def test_output_count_that_does_not_match_the_rubric(tiny):
    folder = onnx_copy(tiny, "extra-label")
    config_path = f"{folder}/config.json"
    config = json.loads(open(config_path).read())
    config["id2label"]["7"] = "humour"
    config["label2id"]["humour"] = 7
    open(config_path, "w").write(json.dumps(config))
    expect_exit_2(tiny, onnx_candidate(tiny, "extra-label", folder),
                  "model.onnx", "7 outputs but config.json id2label names 8")


def test_tokenizer_that_does_not_match_the_model(tiny):
    small_vocab = tiny_model_dir(tiny["root"] / "small-vocab", vocab_size=1000)
    config = write_config(tiny, "small-vocab", [STATIC])
    raw = yaml.safe_load(open(config))
    raw["reference"]["model"] = str(small_vocab)
    open(config, "w").write(yaml.safe_dump(raw))
    expect_exit_2(tiny, config, "small-vocab", "tokenizer has 30522 tokens",
                  "vocabulary has 1000")


def test_calibration_set_too_small(tiny):
    config = write_config(tiny, "few", [{**STATIC, "calibration": {
        "where": {"all": [{"split": "calibration"}, {"content_type": "sms"}]}}}])
    expect_exit_2(tiny, config, "candidates[0].calibration", "fewer than the 100")


def test_outputs_map_an_onnx_model_with_generic_labels(tiny):
    from types import SimpleNamespace

    from validator.scorers.onnx_backend import load_onnx_scorer

    named, generic = onnx_copy(tiny, "named-labels"), onnx_copy(tiny, "generic-labels")
    config_path = f"{generic}/config.json"
    config = json.loads(open(config_path).read())
    config["id2label"] = {str(i): f"LABEL_{i}" for i in range(len(DIMENSIONS))}
    config["label2id"] = {f"LABEL_{i}": i for i in range(len(DIMENSIONS))}
    open(config_path, "w").write(json.dumps(config))
    swap = {0: 1, 1: 0}  # clarity reads persuasiveness's output, by index, and back
    outputs = {d: swap.get(i, f"LABEL_{i}") for i, d in enumerate(DIMENSIONS)}

    def load(folder: str, outputs: dict | None):
        scorer = SimpleNamespace(name="served", model=folder, batch_size=8, max_length=64,
                                 graph_optimization="all", device="cpu", key="candidates[0]",
                                 outputs=outputs, output_scale=None)
        return load_onnx_scorer(scorer, DIMENSIONS, (1, 5))

    texts = pd.read_parquet(tiny["root"] / "sample.parquet").text.head(40).tolist()
    expected = load(named, None).predict(texts)[:, [1, 0, *range(2, len(DIMENSIONS))]]
    np.testing.assert_array_equal(load(generic, outputs).predict(texts), expected)


def renamed_graph(source, target) -> None:
    """``source``'s graph with every intermediate tensor renamed, as another exporter
    (or another version of one) would name it, in a folder of its own."""
    import onnx

    shutil.copytree(source, target)
    model = onnx.load(str(target / "model.onnx"))
    keep = {t.name for t in [*model.graph.input, *model.graph.output, *model.graph.initializer]}
    rename = {}
    for node in model.graph.node:
        for i, name in enumerate(node.output):
            if name not in keep:
                node.output[i] = rename.setdefault(name, f"other/{name}")
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
    del model.graph.value_info[:]
    onnx.save(model, str(target / "model.onnx"))


def test_calibration_ranges_belong_to_the_graph_they_were_computed_on(tiny, monkeypatch):
    """Ranges are per tensor name: a cache entry computed on one export must not serve
    another (a stale entry from an older export failed static quantization in CI)."""
    import onnx

    from validator.cache import cache_root
    from validator.config import load_config
    from validator.data.sample import load_sample
    from validator.scorers import RecipeContext, no_progress
    from validator.scorers.onnx_recipes import (calibration_ranges, quantize_calibrated,
                                                unfused_artefact)
    from validator.scoring import build_scorer

    monkeypatch.setenv("SLICE_VALIDATOR_CACHE", str(tiny["root"] / "ranges-cache"))
    config = load_config(tiny["root"] / write_config(tiny, "ranges", [STATIC]))
    sample = load_sample(config)
    reference = build_scorer(config.reference, config, None, sample,
                             cache_root() / "artefacts", no_progress)
    texts = sample.frame[sample.text_column].head(120).astype(str).tolist()
    context = RecipeContext("candidates[0]", lambda: texts, cache_root() / "artefacts",
                            no_progress)
    exported = unfused_artefact(reference, context)
    other = tiny["root"] / "other-export"
    renamed_graph(exported, other)
    for graph in (exported, other):
        quantize_calibrated(reference, context, graph, texts, "same-rows", "static",
                            tiny["root"] / f"{graph.name}-int8.onnx")
        ranges = json.loads(calibration_ranges(reference, context, graph, "same-rows")
                            .read_text())["data"]
        model = onnx.load(str(graph / "model.onnx"))
        tensors = {name for node in model.graph.node for name in [*node.input, *node.output]}
        assert ranges and set(ranges) <= tensors, (graph, sorted(set(ranges) - tensors)[:5])
