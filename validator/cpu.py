"""The CPU a run measured on: model, the instruction-set features that decide which
quantized kernels run, and the kernel libraries' settings.

INT8 results depend on the CPU: torch's quantized engine and ONNX Runtime pick
different integer kernels with and without AVX-512 / VNNI / AMX (ONNX Runtime
documents u8s8 saturation on x86 without VNNI), so the same candidate can agree
differently with the humans on two machines while the fp32 reference does not. A
config's ``serving.isa`` names the features production serves with; a run on a CPU
lacking one is inconclusive (``missing_isa``).
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

# the features that change integer kernels, as Linux's /proc/cpuinfo names them
ISA_FEATURES = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_tile",
                "amx_int8", "amx_bf16")


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, flags) from /proc/cpuinfo, read once; ('', empty) where there is
    none."""
    path = Path("/proc/cpuinfo")
    model, flags = "", frozenset()
    if not path.is_file():
        return model, flags
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = frozenset(value.split())
    return model, flags


# environment variables that make the kernel libraries use a narrower instruction set
# than the CPU has (FBGEMM_ENABLE_INSTRUCTIONS=AVX2 runs torch's INT8 kernels as on an
# AVX2-only CPU)
KERNEL_OVERRIDES = ("FBGEMM_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY")


def kernel_overrides() -> dict[str, str]:
    return {name: os.environ[name] for name in KERNEL_OVERRIDES if os.environ.get(name)}


def kernel_tag() -> str:
    """What selects the integer kernels here (the ISA features and any override), for
    the prediction cache's key: INT8 predictions made on one CPU are not another's."""
    _, flags = _cpuinfo()
    present = [f for f in ISA_FEATURES if f in flags]
    overrides = [f"{k}={v}" for k, v in sorted(kernel_overrides().items())]
    return ",".join([platform.machine(), *present, *overrides])


def quantized_engine() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return str(torch.backends.quantized.engine)


def onnxruntime_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("onnxruntime")
    except Exception:  # not installed: the facts say so instead of failing the run
        return None


def cpu_facts(required: list[str]) -> dict:
    """What summary.json records under ``cpu``; ``missing_isa`` lists the features of
    ``required`` (the config's ``serving.isa``) this CPU lacks."""
    model, flags = _cpuinfo()
    present = [f for f in ISA_FEATURES if f in flags]
    missing = [f for f in required if f not in flags]
    return {"model": model or platform.processor() or platform.machine(),
            "cores": os.cpu_count() or 1, "isa": present,
            "torch_quantized_engine": quantized_engine(),
            "kernel_overrides": kernel_overrides(),
            "onnxruntime": onnxruntime_version(),
            "serving_isa": list(required), "missing_isa": missing,
            "reason": (f"this CPU lacks {', '.join(missing)}, which serving.isa says "
                       f"production serves with; INT8 kernels differ by instruction set, "
                       f"so this run cannot validate them" if missing else None)}
