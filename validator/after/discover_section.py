"""Discovery at run time (``discovery: {enabled: true}``): the search of discover.py on
the run's record and predictions table before anything is written, so summary.json
holds a ``discovery`` section that report.html and summary.md show, and the slice file
and its figures are written with the other outputs, all at once (validator.outputs).

Discovery advises: it never changes the verdict or the exit code, so when it cannot
run the run goes on without it and a warning on stderr says why.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd

from validator.config import DiscoveryConfig
from validator.after.discover import (YAML_NAME, describe, discover_run, figures_json,
                                       indexed, to_yaml)
from validator.record.run_dir import RunDir
from validator.record.schema import RunRecord, build_record

JSON_NAME = YAML_NAME.removesuffix(".yaml") + ".json"
KEPT = ("name", "candidate", "conditions", "where", "n_search", "search_effect",
        "n_confirm", "degradation", "ci_low", "ci_high", "p_value", "p_value_adjusted",
        "excess", "excess_p_adjusted", "confirmed", "overlap", "examples")
log = logging.getLogger(__name__)


def _finite(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def summary_section(record: dict, files: list[str]) -> dict:
    """summary.json's ``discovery``: per group the figures of the discovery record
    (record.Discovery) with its one-line description."""
    slices = [{**{key: _finite(entry.get(key)) for key in KEPT},
               "description": describe(entry, record)} for entry in record["slices"]]
    if record["signal"] == "label-free":  # the excess is the degradation itself
        for entry in slices:
            entry["excess"], entry["excess_p_adjusted"] = (entry["degradation"],
                                                           entry["p_value_adjusted"])
    return {"signal": record["signal"], "metric": record["metric"], "unit": record["unit"],
            "dimension": record["dimension"], "confidence": record["confidence"],
            "search_rows": record["split"]["search_rows"],
            "confirm_rows": record["split"]["confirm_rows"],
            "features": record["features"]["count"], "note": record["features"]["note"],
            "settings": record["settings"], "files": files, "slices": slices}


def discover_in_run(summary: RunRecord, table: pd.DataFrame, out_dir: Path,
                    settings: DiscoveryConfig) -> tuple[RunRecord, dict[str, str]]:
    """(the record with its discovery section, the files to write beside it by name);
    the record unchanged and no file when discovery cannot run."""
    try:
        data = summary.model_dump(mode="json", by_alias=True)
        record = discover_run(*indexed(RunDir(out_dir, summary, table)), settings)
        files = {YAML_NAME: to_yaml(record), JSON_NAME: figures_json(record)}
        data["discovery"] = summary_section(record, list(files))
        return build_record(data, f"{out_dir / 'summary.json'} (discovery)"), files
    except Exception as exc:  # noqa: BLE001 - see the module docstring
        log.warning("discovery skipped: %s", exc)
        return summary, {}
