#!/usr/bin/env bash
# The GPU check (issue 25): the CUDA tests, bench_gpu.py and, when its packages are at
# hand, the gate with bf16/fp16 candidates on CUDA; under 8 minutes on one H100/H200.
#
# Run from the repository root:  bash benchmarks/gpu_check.sh [OUT_DIR]
# On a machine without the project's own dependencies, put wheels of what is missing in
# WHEELS (default .whl/) and the encoder's config.json and tokenizer files in ENCODER
# (default .encoder/; then the benchmark uses random weights of that architecture).
# Without a CUDA device every GPU part skips and the script exits 0.
set -uo pipefail
out=${1:-${OUT:-/tmp/gpu-check}}
wheels=${WHEELS:-.whl}
encoder=${ENCODER:-.encoder}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 SLICE_VALIDATOR_CACHE=${SLICE_VALIDATOR_CACHE:-/tmp/gpu-check-cache}
status=0

if compgen -G "$wheels/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$wheels"/*.whl || exit 2
  export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi

if ! python3 -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
  echo "gpu_check: no CUDA device; the GPU parts skip"
  python3 -m pytest tests/test_cuda.py -q -p no:cacheprovider 2>&1 | tail -3
  exit 0
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers",
  transformers.__version__)' | tee -a "$out/gpu.txt"

budget=${BUDGET:-480}  # seconds for the whole check; the gate runs only if time is left
echo "== CUDA tests"
timeout 120 python3 -m pytest tests/test_cuda.py -q -p no:cacheprovider -rs 2>&1 \
  | tee "$out/test_cuda.txt" || status=1

echo "== bench_gpu.py"
if [ -f "$encoder/config.json" ]; then model=(--random-from "$encoder"); else model=(--model default); fi
timeout 300 python3 benchmarks/bench_gpu.py "${model[@]}" --out "$out/results-gpu.json" \
  2>&1 | tee "$out/bench_gpu.txt" || status=1

left=$((budget - SECONDS))
if [ "$left" -lt 60 ]; then
  echo "gpu_check: ${left}s left of ${budget}s; the gate is skipped"
elif python3 -c 'import pydantic, great_expectations, re2' 2>/dev/null; then
  echo "== the gate with torch-bf16 / torch-fp16 candidates on CUDA"
  timeout "$left" python3 benchmarks/gpu_gate.py "$out" "${model[@]}" 2>&1 | tee "$out/gate.txt" \
    || status=1
fi
exit $status
