"""The report's and summary.md's view of summary.json's ``discovery`` section: slices
nobody defined, found at run time, confirmed ones first, each with a few example rows
from predictions.parquet (the ids are in summary.json)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from validator.record.schema import DiscoveredSlice, RunRecord

EXAMPLES_SHOWN = 3   # example rows per discovered slice
TEXT_CHARS = 240     # longer texts are cut (the full text is in predictions.parquet)


def _figure(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _short(text) -> str:
    text = "" if text is None or text != text else str(text)
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS - 1] + "…"


def example_rows(summary: RunRecord, found: DiscoveredSlice,
                 predictions: pd.DataFrame | None) -> list[dict]:
    """Each example id's text and the dimension whose prediction moved most, with the
    human, reference and candidate values on it; ids only without the table."""
    ids = found.examples[:EXAMPLES_SHOWN]
    if predictions is None or "text" not in predictions.columns:
        return [dict.fromkeys(("text", "dimension", "human", "reference", "candidate_value"),
                              None) | {"id": i} for i in ids]
    table = predictions.set_index(predictions["id"].astype(str))
    chosen = summary.discovery.dimension
    dimensions = summary.rubric.dimensions if chosen == "_all" else [chosen]
    reference = summary.reference.name
    rows = []
    for i in (i for i in ids if i in table.index):
        row = table.loc[i]
        moved = [abs(row[f"{found.candidate}:{d}"] - row[f"{reference}:{d}"])
                 for d in dimensions]
        dimension = dimensions[int(np.argmax(moved))]
        rows.append({"id": i, "text": _short(row["text"]), "dimension": dimension,
                     "human": row[f"human:{dimension}"],
                     "reference": row[f"{reference}:{dimension}"],
                     "candidate_value": row[f"{found.candidate}:{dimension}"]})
    return rows


def section(summary: RunRecord, predictions: pd.DataFrame | None) -> dict | None:
    """What _discovery.html.j2 shows, or None for a run without discovery."""
    discovery = summary.discovery
    if discovery is None:
        return None
    entries = [{"slice": s, "examples": example_rows(summary, s, predictions)}
               for s in discovery.slices]
    return {"record": discovery, "sentence": sentence(summary),
            "confirmed": [e for e in entries if e["slice"].confirmed],
            "unconfirmed": [e for e in entries if not e["slice"].confirmed]}


def sentence(summary: RunRecord) -> str | None:
    """One line: what discovery searched and what it confirmed (summary.md, report)."""
    discovery = summary.discovery
    if discovery is None:
        return None
    confirmed = [s for s in discovery.slices if s.confirmed]
    head = (f"Discovery ({discovery.signal}, {discovery.metric}, dimension "
            f"{discovery.dimension}): {len(confirmed)} of {len(discovery.slices)} groups "
            f"found on {discovery.search_rows} search rows confirmed on the other "
            f"{discovery.confirm_rows}")
    if not confirmed:
        return head + "."
    listed = "; ".join(f"{s.name} for {s.candidate}, degradation "
                       f"{_figure(s.degradation, '.3g')} {discovery.unit} on {s.n_confirm} "
                       f"rows (BH-adjusted p {_figure(s.p_value_adjusted, '.2g')})"
                       for s in confirmed[:3])
    more = f"; {len(confirmed) - 3} more" if len(confirmed) > 3 else ""
    return f"{head}: {listed}{more}; slice file {', '.join(discovery.files[:1])}."
