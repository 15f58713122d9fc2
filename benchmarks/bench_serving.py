"""Serving benchmarks (issue 15): every recipe measured alone, before and after fusion.

For the default scorer and each recipe, one fresh process per scorer
(validator.speed.isolated, the same measurement a run makes) gives memory, batch-1
latency, throughput at batch 32 and capacity under a 500 ms p95 SLO, on the run's
seeded production-mix probe. "Before" ONNX graphs are rebuilt as main built them
(``torch.onnx.export(dynamo=True)``, no fusion; quantize_dynamic without a default
tensor type; quantize_static of that graph); "after" graphs are the recipes' own
(TorchScript export, ONNX Runtime transformer fusions). All are measured one after the
other in one benchmark run (``--attempts N`` interleaves N rounds and keeps each scorer's
best throughput), and the
1-minute load average is recorded beside each, since the machine may be shared.
``--part calibration`` times static calibration of 2,000 rows against the reference
scoring the same rows.

python benchmarks/bench_serving.py [--part serving|calibration] [--attempts N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

from validator.cache import cache_root
from validator.config import default_config
from validator.speed.isolated import measure
from validator.plan import make_plan
from validator.speed.profile import probe_texts
from validator.scorers import RecipeContext, get_recipe, no_progress
from validator.scorers.onnx_recipes import unfused_artefact
from validator.scoring import build_scorer, calibration_texts

HERE = Path(__file__).resolve().parent


def dynamo_export(reference, folder: Path) -> Path:
    """main's export before issue 15: dynamo, unfused, with its side files."""
    import torch

    from validator.scorers.onnx_export import input_names, logits_module, write_side_files

    names = input_names(reference)
    example = reference.tokenizer(["an example", "a second, longer example text"],
                                  padding=True, return_tensors="pt")
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            logits_module(reference.model, names), tuple(example[n] for n in names),
            input_names=names,
            output_names=["logits"], dynamo=True, external_data=False, verbose=False,
            dynamic_shapes={"inputs": tuple({0: batch, 1: sequence} for _ in names)})
    folder.mkdir(parents=True, exist_ok=True)
    program.save(str(folder / "model.onnx"), external_data=False)
    reference.model.eval()
    write_side_files(reference, folder)
    return folder


def before_graphs(reference, texts: list[str], root: Path) -> dict[str, Path]:
    """main's onnx-fp32, onnx-int8-dynamic and onnx-int8-static graphs."""
    import shutil

    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)

    from validator.scorers.onnx_recipes import CalibrationReader

    fp32 = dynamo_export(reference, root / "fp32")
    graphs = {"onnx-fp32": fp32 / "model.onnx"}
    for name in ("dynamic", "static"):
        folder = root / name
        shutil.copytree(fp32, folder)
        (folder / "model.onnx").unlink()
        graphs[f"onnx-int8-{name}"] = folder / "model.onnx"
    quantize_dynamic(fp32 / "model.onnx", graphs["onnx-int8-dynamic"],
                     weight_type=QuantType.QInt8)
    reader = CalibrationReader(reference, texts, ["input_ids", "attention_mask",
                                                  "token_type_ids"])
    quantize_static(fp32 / "model.onnx", graphs["onnx-int8-static"], reader,
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["MatMul", "Gemm", "Gather"],
                    calibrate_method=CalibrationMethod.MinMax)
    return graphs


def specs(config, sample, scratch: Path) -> dict[str, dict]:
    reference = build_scorer(config.reference, config, None, sample, scratch, no_progress)
    texts = calibration_texts(sample, config.candidates[1], config)
    out = {"fp32 (reference)": reference.serving_spec()}
    for recipe in ("torch-int8-dynamic", "torch-bf16"):
        out[recipe] = {**reference.serving_spec(), "name": recipe, "recipe": recipe}
    context = RecipeContext("bench", lambda: texts, cache_root() / "artefacts", no_progress)
    for recipe in ("onnx-fp32", "onnx-int8-dynamic", "onnx-int8-static"):
        after = get_recipe(recipe)(recipe, reference, context)
        out[f"{recipe} (after)"] = after.serving_spec()
        print(recipe, after.recipe.get("graph_fusions"), flush=True)
    for recipe, graph in before_graphs(reference, texts, scratch / "before").items():
        out[f"{recipe} (before: dynamo, unfused)"] = {
            **out[f"{recipe} (after)"], "path": str(graph)}
    return out


def serving(attempts: int) -> dict:
    config = default_config()
    sample = make_plan(config).sample
    texts, how = probe_texts(sample.frame, sample.texts, config.sample.production_mix,
                             config.seed)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        scorers = specs(config, sample, Path(scratch))
        for attempt in range(attempts):
            for name, spec in scorers.items():
                load = os.getloadavg()[0]
                found = measure({**spec, "name": name}, texts, 500.0)
                found["load_average"] = load
                print(attempt, name, {k: v for k, v in found.items()
                                      if k != "capacity_levels"}, flush=True)
                best = results.get(name)
                if best is None or found["throughput_rows_per_s"] > \
                        best["throughput_rows_per_s"]:
                    results[name] = found
    reference = results["fp32 (reference)"]
    for found in results.values():
        for key in ("memory_bytes", "throughput_rows_per_s", "capacity_rps"):
            found[f"{key}_vs_reference"] = (found[key] / reference[key]
                                            if reference[key] else None)
        found["speedup_vs_reference"] = reference["latency_ms_p50"] / found["latency_ms_p50"]
    return {"probe": how, "cores": os.cpu_count(), "scorers": results}


def calibration(attempts: int) -> dict:
    """Static calibration of the configured 2,000 rows vs the reference scoring them."""
    config = default_config()
    sample = make_plan(config).sample
    with tempfile.TemporaryDirectory() as scratch:
        reference = build_scorer(config.reference, config, None, sample, Path(scratch),
                                 no_progress)
        texts = calibration_texts(sample, config.candidates[1], config)
        load = os.getloadavg()[0]
        start = time.perf_counter()
        reference.predict(texts)
        scoring = time.perf_counter() - start
        context = RecipeContext("bench", lambda: texts, Path(scratch), no_progress)
        unfused_artefact(reference, context)  # the export static quantizes, timed apart
        start = time.perf_counter()
        get_recipe("onnx-int8-static")("static", reference, context)
        calibrating = time.perf_counter() - start
    return {"rows": len(texts), "reference_scoring_s": scoring,
            "static_quantization_s": calibrating, "ratio": calibrating / scoring,
            "load_average_before": load, "load_average_after": os.getloadavg()[0]}


PARTS = {"serving": serving, "calibration": calibration}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=list(PARTS), default="serving")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--attempts", type=int, default=1)
    args = parser.parse_args()
    result = PARTS[args.part](args.attempts)
    out = args.out or HERE / f"results-serving-{args.part}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
