"""INT8 on a narrower instruction set (issue 15, item 6): the default gate's torch INT8
candidate scored with its kernels limited to AVX2, with and without ``reduce_range``.

torch's quantized kernels (FBGEMM) can be limited to a narrower instruction set than
the CPU has with ``FBGEMM_ENABLE_INSTRUCTIONS=AVX2``, which makes them run as on an
AVX2-only CPU (no AVX-512, no VNNI): the integer dot products then go through
``vpmaddubsw``, which saturates int16 sums of u8 x s8 products, the reason torch's
dynamic ``Linear`` quantizes activations with ``reduce_range=True`` (7 bits). The
candidate runs eagerly in every configuration (a TorchScript trace keeps the range it
was traced with). Each
configuration runs in a fresh process (FBGEMM reads the variable once) and scores every
gate row of the default sample; the exact agreement with the human ratings, all rows
and all dimensions, is compared with the fp32 reference's and with the CPU's own
kernels. ONNX Runtime's kernels cannot be narrowed this way (MLAS picks them from
CPUID), so the ONNX recipes are not measured here.

python benchmarks/bench_isa.py [--out benchmarks/results-isa.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGURATIONS = {  # label: (FBGEMM_ENABLE_INSTRUCTIONS or None, reduce_range)
    "cpu kernels, reduce_range (torch default)": (None, True),
    "cpu kernels, full range": (None, False),
    "AVX2 kernels, reduce_range (torch default)": ("AVX2", True),
    "AVX2 kernels, full range": ("AVX2", False),
}


def score(reduce_range: bool) -> dict:
    """In this process: the reference and the INT8 candidate of the default gate on its
    gate rows; exact agreement (all rows, all dimensions) of each."""
    import hashlib
    import tempfile

    import numpy as np

    from validator.config import default_config
    from validator.metrics import ALL_DIMENSIONS, compute_metrics
    from validator.plan import make_plan
    from validator.scorers import no_progress
    from validator.scoring import build_scorer

    config = default_config()
    plan = make_plan(config)
    sample = plan.sample
    with tempfile.TemporaryDirectory() as scratch:
        reference = build_scorer(config.reference, config, None, sample, Path(scratch),
                                 no_progress)
        candidate = build_scorer(config.candidates[0], config, reference, sample,
                                 Path(scratch), no_progress)
    if not reduce_range:  # torch's dynamic Linear before version 4: the full 8-bit range
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

        for module in candidate.model.modules():
            if isinstance(module, DynamicLinear):
                module.version = 3
    candidate.runtime = "eager"  # a trace keeps the range it was traced with: run eagerly
    candidate.run_model = candidate._runner()
    predictions = {"fp32": reference.predict(sample.texts),
                   "int8": candidate.predict(sample.texts)}
    metrics = compute_metrics(sample.human, predictions, plan.masks[["all"]],
                              config.rubric.scale, only=["exact_agreement"])
    overall = metrics[metrics.dimension == ALL_DIMENSIONS].set_index("scorer")["value"]
    digest = hashlib.sha256(np.round(predictions["int8"], 6).tobytes()).hexdigest()
    return {"exact_agreement": {k: float(v) for k, v in overall.items()},
            "int8_predictions_sha256": digest[:16], "runtime": candidate.runtime,
            "rows": len(sample.texts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "results-isa.json")
    parser.add_argument("--child", choices=["reduce", "full"])
    args = parser.parse_args()
    if args.child:
        print(json.dumps(score(args.child == "reduce")))
        return
    results = {}
    for label, (isa, reduce_range) in CONFIGURATIONS.items():
        env = {k: v for k, v in os.environ.items() if k != "FBGEMM_ENABLE_INSTRUCTIONS"}
        if isa:
            env["FBGEMM_ENABLE_INSTRUCTIONS"] = isa
        done = subprocess.run([sys.executable, __file__, "--child",
                               "reduce" if reduce_range else "full"],
                              env=env, capture_output=True, text=True, check=True)
        results[label] = json.loads(done.stdout.strip().splitlines()[-1])
        print(label, results[label], flush=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
