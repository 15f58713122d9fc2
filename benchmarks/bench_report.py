"""Report benchmark: render report.html for a 20,000-row sample with 30 slices.

The sample is the shipped one resampled to 20,000 rows (new ids), with columns-backend
predictions for a reference and two candidates; slices: the shipped pack plus one per
brand and per channel. Times `render_html` alone and reports the page size.
Usage: python benchmarks/bench_report.py [--rows 20000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from synthetic import ROOT, columns_gate, resampled_sample

from validator.config import load_config
from validator.outputs.html import render_html
from validator.pipeline import run_gate


def build(folder: Path, rows: int) -> Path:
    frame = resampled_sample(rows, {"int8": 0.15, "onnx": 0.2})
    frame.to_parquet(folder / "sample.parquet", index=False)
    extra = [{"name": f"brand-{i}", "where": {"brand": b}}
             for i, b in enumerate(sorted(frame.brand.unique()))]
    extra += [{"name": f"channel-{c}", "where": {"channel": c}}
              for c in sorted(frame.channel.unique())]
    (folder / "extra.yaml").write_text(yaml.safe_dump({"slices": extra}))
    config = columns_gate("sample.parquet", ["int8", "onnx"],
                          [str(ROOT / "slices"), "extra.yaml"])
    path = folder / "gate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results-report.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        summary = run_gate(load_config(build(folder, args.rows)), folder / "run")
        predictions = pd.read_parquet(folder / "run" / "predictions.parquet")
        start = time.perf_counter()
        html = render_html(summary, predictions)
        seconds = time.perf_counter() - start
    result = {"rows": args.rows, "slices": len(summary.slices),
              "checks": len(summary.checks), "render_s": round(seconds, 2),
              "html_bytes": len(html.encode("utf-8"))}
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
