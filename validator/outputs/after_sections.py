"""Report sections for the layer decisions taken after the verdict, read from the files
``validator diagnose`` / ``repair`` / ``recommend`` leave in the run directory:
``diagnose-NAME.json``, ``repair-NAME.json``, ``routing.options.json``.

``after_sections(run_dir)`` gives the template's ``diagnoses`` and ``repairs``, and
``routing_vs_repair``: per candidate with both a routing option and a repair, the cost
of each side by side (what the report's decision section shows).
"""

from __future__ import annotations

import json
from pathlib import Path

from validator.errors import ValidatorError

TOP_ROWS = 8  # ranked layers shown per slice


def _read(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValidatorError(f"{path}: cannot read ({exc})") from exc


def diagnoses(run_dir: Path) -> list[dict]:
    """Each diagnosis with its ranked rows grouped per slice (the first TOP_ROWS)."""
    out = []
    for path in sorted(run_dir.glob("diagnose-*.json")):
        record = _read(path)
        slices = [{**target, "rows": [e for e in record["layers"]
                                      if e["slice"] == target["slice"]][:TOP_ROWS]}
                  for target in record["slices"]]
        out.append({**record, "slices": slices, "file": path.name})
    return out


def repairs(run_dir: Path) -> list[dict]:
    return [{**_read(path), "file": path.name}
            for path in sorted(run_dir.glob("repair-*.json"))]


def routing_vs_repair(run_dir: Path, repaired: list[dict]) -> list[dict]:
    """Per candidate with a repair and a routing option (validator recommend): what
    routing costs (fallback traffic to the reference) beside what repair costs (layers
    kept in fp32: size and latency), each with its confirmation."""
    path = run_dir / "routing.options.json"
    if not path.is_file():
        return []
    options = {o["candidate"]: o for o in _read(path)}
    rows = []
    for record in repaired:
        option = options.get(record["candidate"])
        if option is None:
            continue
        best = record["steps"][record["best_step"]]
        rows.append({"candidate": record["candidate"],
                     "routing": {"routes": _routes(option), "share": option["share"],
                                 "confirmation": option["confirmation"],
                                 "failing": len(option.get("failing", [])),
                                 "monthly_cost": (option.get("cost") or {}).get(
                                     "monthly_cost")},
                     "repair": {"layers_kept": best["layers_kept"],
                                "size_bytes": best["size_bytes"],
                                "latency_ms_p50": best["latency_ms_p50"],
                                "confirmation": record["confirmation"]["verdict"],
                                "failing": record["confirmation"]["repaired"]["fail"]},
                     "original": record["original"], "reference": record["reference"]})
    return rows


def _routes(option: dict) -> list[str]:
    """The plan's routes, ``slice -> scorer``."""
    return [f"{r['slice']} -> {r['to']}" for r in option["routes"]]


def after_sections(run_dir: Path) -> dict:
    """The template variables of ``_diagnose.html.j2`` (empty lists: no section)."""
    repaired = repairs(run_dir)
    return {"diagnoses": diagnoses(run_dir), "repairs": repaired,
            "routing_vs_repair": routing_vs_repair(run_dir, repaired)}
