"""GPU serving truth (issue 25): the harness's figures for each GPU scorer beside a
direct measurement of the same model.

For each variant (fp32, bf16 and fp16, eager and TorchScript-traced, and torchao INT8
eager) on one CUDA device:

- **harness**: the measurement a run makes (``validator.speed.isolated``, a fresh
  process): serving throughput (tokenising included), tokenising alone, the forward pass
  alone, batch-1 latency and the capacity levels of the closed-loop load test;
- **direct**: the same model, texts, batch size, dtype and runtime in this process,
  measured the plain way: texts tokenised in one call, sorted by length, padded per batch
  with numpy, moved to the GPU, and run; ``torch.cuda.synchronize`` around each pass;
  warmed up over every batch shape first; the median of ``REPEATS`` passes, with and
  without the tokenising, and the tokenising alone.

Targets (issue 25, on an H100/H200): harness >= 0.8x direct for fp32 and bf16, eager and
traced; traced bf16 and fp16 >= 1.2x traced fp32 at batch 32; the capacity levels do not
fall by more than 10% before the best level (monotone up to saturation).

The model is a model directory (``--model``; ``default`` is the default scorer), or
random weights of the architecture whose ``config.json`` and tokenizer are in
``--random-from`` (speed depends on the architecture and the texts, not the weights).

python benchmarks/bench_gpu.py --model default [--texts 512] [--batch 32] [--out FILE]
python benchmarks/bench_gpu.py --random-from DIR ...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "fixtures" / "sample.csv"
REPEATS = 3
SLO_MS = 500.0
LABELS = ["clarity", "persuasiveness", "brand_voice", "grammar", "call_to_action",
          "compliance", "tone"]
VARIANTS = [  # (name, recipe, runtime), the traced ones first (the 1.2x target)
    ("fp32 traced", None, "torchscript"), ("bf16 traced", "torch-bf16", "torchscript"),
    ("fp16 traced", "torch-fp16", "torchscript"), ("fp32 eager", None, "eager"),
    ("bf16 eager", "torch-bf16", "eager"), ("fp16 eager", "torch-fp16", "eager"),
    ("torchao int8 eager", "torchao-int8-dynamic", "eager"),
]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                   "special_tokens_map.json")


def random_model_dir(source: Path, target: Path, max_length: int = 256) -> Path:
    """Random weights of the architecture in ``source``/config.json, 7 regression
    outputs, with ``source``'s tokenizer cut at ``max_length`` (the default scorer's)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    config = json.loads((source / "config.json").read_text("utf-8"))
    config.pop("_name_or_path", None)
    config.update(architectures=["BertForSequenceClassification"], problem_type="regression",
                  num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                  label2id={label: i for i, label in enumerate(LABELS)})
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**config))
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    tokenizer_config = json.loads((target / "tokenizer_config.json").read_text("utf-8"))
    tokenizer_config["model_max_length"] = max_length
    (target / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), "utf-8")
    return target


def probe(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct texts of the shipped sample, a seeded draw in shuffled order."""
    texts = pd.read_csv(SAMPLE)["text"].drop_duplicates()
    return texts.sample(n=min(count, len(texts)), random_state=seed).tolist()


def harness(model_dir: Path, recipe: str | None, runtime: str, texts: list[str],
            batch: int, max_length: int, device: str) -> dict:
    from validator.speed.isolated import measure

    spec = {"name": recipe or "fp32", "backend": "transformers", "path": str(model_dir),
            "recipe": recipe, "runtime": runtime, "device": device, "batch_size": batch,
            "max_length": max_length}
    return measure(spec, texts, SLO_MS)


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def direct_model(model_dir: Path, recipe: str | None, runtime: str, device: str, tokenizer):
    """The variant built the plain way: loaded, cast or quantized, and (traced) the same
    verified frozen trace a run serves."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from validator.scorers.torchscript import trace

    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, local_files_only=True, use_safetensors=True).eval().to(device)
    if recipe in ("torch-bf16", "torch-fp16"):
        model = model.to(torch.bfloat16 if recipe == "torch-bf16" else torch.float16)
    elif recipe == "torchao-int8-dynamic":
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
        quantize_(model, Int8DynamicActivationInt8WeightConfig())
    if runtime == "eager":
        return lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits
    traced = trace(model, tokenizer, device, f"direct {recipe or 'fp32'}")
    return lambda ids, mask: traced({"input_ids": ids, "attention_mask": mask})


def direct_batches(tokenizer, texts: list[str], batch: int, max_length: int,
                   device: str) -> list:
    """Length-sorted batches of (ids, mask) on the device, padded with numpy."""
    import torch

    encodings = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    order = np.argsort([len(e) for e in encodings], kind="stable")
    out = []
    for start in range(0, len(order), batch):
        rows = [encodings[i] for i in order[start:start + batch]]
        ids = np.full((len(rows), max(map(len, rows))), tokenizer.pad_token_id, np.int64)
        mask = np.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, :len(row)], mask[i, :len(row)] = row, 1
        out.append((torch.from_numpy(ids).to(device, non_blocking=True),
                    torch.from_numpy(mask).to(device, non_blocking=True)))
    return out


def direct(model_dir: Path, recipe: str | None, runtime: str, texts: list[str], batch: int,
           max_length: int, device: str) -> dict:
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    forward = direct_model(model_dir, recipe, runtime, device, tokenizer)
    prepare = lambda: direct_batches(tokenizer, texts, batch, max_length, device)  # noqa: E731

    def run(batches) -> None:
        with torch.inference_mode():
            outputs = [forward(ids, mask).float() for ids, mask in batches]
        for output in outputs:
            output.cpu()

    def seconds(work) -> list[float]:
        times = []
        for _ in range(REPEATS):
            synchronize(device)
            start = time.perf_counter()
            work()
            synchronize(device)
            times.append(time.perf_counter() - start)
        return times

    batches = prepare()
    for _ in range(2):  # every shape twice: kernel choice, TorchScript's specialisation
        run(batches)
    with_tokens = seconds(lambda: run(prepare()))
    forward_only = seconds(lambda: run(batches))
    tokens_only = seconds(prepare)
    rate = lambda times: len(texts) / statistics.median(times)  # noqa: E731
    return {"throughput_rows_per_s": rate(with_tokens),
            "best_throughput_rows_per_s": len(texts) / min(with_tokens),
            "forward_rows_per_s": rate(forward_only),
            "tokenize_rows_per_s": rate(tokens_only)}


def monotone_to_saturation(levels: list[dict], slack: float = 0.10) -> bool:
    """No level before the best one is more than ``slack`` below a level before it."""
    rates = [level["throughput_rps"] for level in levels]
    best = int(np.argmax(rates))
    return all(rates[i] >= (1 - slack) * max(rates[:i]) for i in range(1, best + 1))


def verdicts(measured: dict) -> dict:
    rows = {name: row for name, row in measured.items() if "error" not in row}
    ratio = {name: row["harness"]["throughput_rows_per_s"]
             / row["direct"]["throughput_rows_per_s"] for name, row in rows.items()}
    out = {"harness_vs_direct": ratio,
           "harness_at_least_0.8x_direct": all(
               ratio[n] >= 0.8 for n in ratio if n.split()[0] in ("fp32", "bf16")
               and "int8" not in n),
           "capacity_monotone_to_saturation": {
               n: monotone_to_saturation(r["harness"]["capacity_levels"])
               for n, r in rows.items()}}
    if "fp32 traced" in rows:
        for source in ("direct", "harness"):
            base = rows["fp32 traced"][source]["throughput_rows_per_s"]
            out[f"{source}_vs_fp32_traced"] = {
                n: rows[n][source]["throughput_rows_per_s"] / base
                for n in ("bf16 traced", "fp16 traced") if n in rows}
        out["half_traced_at_least_1.2x_fp32_traced"] = all(
            v >= 1.2 for v in out["harness_vs_fp32_traced"].values())
    return out


def device_facts(device: str) -> dict:
    import torch

    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    return {"device": name, "torch": torch.__version__,
            "cpu_cores": os.cpu_count(), "load_average_1m": os.getloadavg()[0]}


def model_source(args, scratch: Path) -> tuple[Path, str]:
    if args.random_from:
        return (random_model_dir(Path(args.random_from), scratch / "random", args.max_length),
                f"random weights, architecture and tokenizer of {Path(args.random_from).name}")
    if args.model == "default":
        from validator.scorers.default_model import default_model_dir
        return default_model_dir(), "the default scorer"
    return Path(args.model), str(args.model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--random-from", default=None)
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--variants", default=",".join(v[0] for v in VARIANTS))
    parser.add_argument("--device", default="cuda", help="cpu: try the script itself")
    parser.add_argument("--out", default=str(HERE / "results-gpu.json"))
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA device"}))
        return
    wanted = args.variants.split(",")
    texts = probe(args.texts)
    result = {"texts": len(texts), "batch": args.batch, **device_facts(args.device),
              "variants": {}}
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as scratch:
        model_dir, result["model"] = model_source(args, Path(scratch))
        for name, recipe, runtime in (v for v in VARIANTS if v[0] in wanted):
            try:
                result["variants"][name] = {
                    "direct": direct(model_dir, recipe, runtime, texts, args.batch,
                                     args.max_length, args.device),
                    "harness": harness(model_dir, recipe, runtime, texts, args.batch,
                                       args.max_length, args.device)}
            except Exception as exc:  # noqa: BLE001 - one variant failing is a finding too
                result["variants"][name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
            print(name, json.dumps(result["variants"][name]), flush=True)
            result["targets"] = verdicts(result["variants"])
            Path(args.out).write_text(json.dumps(result, indent=2))  # kept if cut short
    print(json.dumps(result["targets"], indent=2))

if __name__ == "__main__":
    main()
