"""``validator discover``: slices nobody defined, where a candidate loses to its reference.

From a finished run directory (summary.json, predictions.parquet; nothing is
re-scored) and the sample file named in summary.json (for its metadata columns):

1. rows are split in two halves by a hash of their id and the run's seed;
2. on the search half, conjunctions of up to ``max_conditions`` features (features.py)
   are searched for the groups where the candidate loses most (lattice.py), on the
   per-row agreement lost minus agreement gained (human ratings), or on how often the
   rounded rating changes (``label_free``, or when no row is rated);
3. the best ``max_slices`` distinct groups are re-measured on the confirmation half with
   the gate's own statistics (confirm.py); only confirmed ones become slices.

Outputs: ``discovered-slices.yaml`` (slice DSL, loadable by the next run unchanged;
unconfirmed groups as comments) and ``discovered-slices.json`` (every figure) beside it.
At run time (discover_section.py) the same search also fills summary.json's
``discovery`` section.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from validator.config import DiscoveryConfig
from validator.after.confirm import confirm_label_free, confirm_labelled
from validator.after.features import Feature, build_features, feature_masks
from validator.after.lattice import Found, search
from validator.record.run_dir import RunDir
from validator.errors import ValidatorError
from validator.metrics import ALL_DIMENSIONS, get_metric, round_rating
from validator.record.write import write_text
from validator.record.ownership import check_replaceable

YAML_NAME = "discovered-slices.yaml"
REDUNDANT = 0.5  # a group whose search rows overlap a better one this much is skipped
EXAMPLES = 5     # example row ids kept per group (the report shows them)


def read_run(run_dir: Path) -> tuple[RunDir, pd.DataFrame]:
    """A finished run directory, read and verified, and its table indexed by id."""
    return indexed(RunDir.read(run_dir))


def indexed(run: RunDir) -> tuple[RunDir, pd.DataFrame]:
    """The run and its predictions table indexed by id (as text), with the columns
    discovery reads checked."""
    run.require_columns(["id", "text"])
    return run, run.table.set_index(run.table["id"].astype(str))


def _id_column(sample: pd.DataFrame, ids: pd.Index) -> str | None:
    for column in ["id", *sample.columns]:
        if column in sample.columns and ids.isin(sample[column].astype(str)).all():
            return column
    return None


def sample_metadata(run: RunDir, ids: pd.Index,
                    wanted: list[str] | None) -> tuple[pd.DataFrame, list[str], str]:
    """(the sample's columns for these rows, the columns to search, a note)."""
    from validator.cache import file_sha256
    from validator.data.sample import read_table

    empty = pd.DataFrame(index=ids)
    path = run.sample_path
    problem = ("not found" if not path.is_file() else
               "changed since the run (sha256 differs)"
               if run.sample_sha256 and file_sha256(path) != run.sample_sha256 else None)
    if problem:
        if wanted:
            raise ValidatorError(f"{path}: the sample is {problem}; cannot search the "
                                 f"columns {', '.join(wanted)}")
        return empty, [], f"sample {path} {problem}: searched text features only"
    sample = read_table(path)
    key = _id_column(sample, ids)
    if key is None:
        return empty, [], f"no column of {path} holds the run's ids: searched text features only"
    sample = sample.drop_duplicates(key)
    sample = sample.set_index(sample[key].astype(str)).reindex(ids)
    for column in wanted or []:
        if column not in sample.columns:
            raise ValidatorError(f"discovery.columns: {column!r} is not a column of {path} "
                                 f"(columns: {', '.join(map(str, sample.columns))})")
    dimensions = [d.lower() for d in run.dimensions]
    columns = wanted or [c for c in sample.columns if c not in (key, run.text_column)
                         and not any(d in str(c).lower() for d in dimensions)]
    return sample.drop(columns=[key, run.text_column], errors="ignore"), columns, \
        f"metadata columns from {path}"


def search_half(ids: pd.Index, seed: int) -> np.ndarray:
    """True for the rows searched, False for those kept to confirm (stable id hash)."""
    return np.array([hashlib.sha256(f"{seed}:{i}".encode("utf-8")).digest()[0] % 2 == 0
                     for i in ids], dtype=bool)


def labelled_signal(run: RunDir, table: pd.DataFrame, candidate: str,
                    dimension: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Per row: (agreement lost minus gained, summed over rated dimensions; rated
    dimensions; what was measured). Metrics without a per-row value search on exact
    agreement and are confirmed on their own metric."""
    dims = run.dimensions if dimension == ALL_DIMENSIONS else [dimension]
    metric = get_metric(run.gate.metric)
    search = metric if metric.row_value is not None else get_metric("exact_agreement")
    value, sign = search.row_value, 1.0 if search.higher_is_better else -1.0
    human = table[[f"human:{d}" for d in dims]].to_numpy(float)
    rated = ~np.isnan(human)
    ref, cand = (table[[f"{s}:{d}" for d in dims]].to_numpy(float)
                 for s in (run.reference, candidate))
    h = np.nan_to_num(human)
    delta = np.where(rated, sign * (value(h, ref, run.scale) - value(h, cand, run.scale)), 0.0)
    measured = metric.name if search is metric else "exact_agreement (search proxy)"
    return delta.sum(axis=1), rated.sum(axis=1).astype(float), measured


def change_signal(run: RunDir, table: pd.DataFrame, candidate: str,
                  dimension: str) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (percent of dimensions whose rounded rating changed x dimensions,
    dimensions); needs no human rating."""
    dims = run.dimensions if dimension == ALL_DIMENSIONS else [dimension]
    ref, cand = (round_rating(table[[f"{s}:{d}" for d in dims]].to_numpy(float), run.scale)
                 for s in (run.reference, candidate))
    return (ref != cand).sum(axis=1) * 100.0, np.full(len(table), float(len(dims)))


def _name(features: list[Feature], taken: set[str]) -> str:
    base = ("discovered-" + "-and-".join(f.slug for f in features))[:80].rstrip("-")
    name, k = base, 2
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    taken.add(name)
    return name


def _where(features: list[Feature]) -> dict:
    """The group's condition, copied (YAML would write shared parts as anchors)."""
    return copy.deepcopy(features[0].condition if len(features) == 1 else
                         {"all": [f.condition for f in features]})


def pick(found: list[Found], masks: np.ndarray, rows: np.ndarray, signal,
         limit: int) -> list:
    """The best ``limit`` groups (on the search ``rows``), skipping any that mostly
    repeats a better one, or whose excess loss is gone once the rows of better ones are
    left out (a wider group that merely contains a worse one)."""
    sums, weights = signal
    overall = sums[rows].sum() / weights[rows].sum()
    chosen: list[tuple[Found, np.ndarray]] = []
    covered = np.zeros(len(rows), dtype=bool)
    for group in found:
        mask = masks[:, list(group.features)].all(axis=1)
        rest = mask & rows & ~covered
        if weights[rest].sum() == 0 or sums[rest].sum() / weights[rest].sum() <= overall:
            continue
        if all(_jaccard(mask & rows, other & rows) < REDUNDANT for _, other in chosen):
            chosen.append((group, mask))
            covered |= mask
            if len(chosen) == limit:
                break
    return chosen


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


def overlap(mask: np.ndarray, table: pd.DataFrame) -> dict | None:
    """The configured slice this group overlaps most (Jaccard over all rows)."""
    best = None
    for column in table.columns:
        if column.startswith("slice:") and column != "slice:all":
            score = _jaccard(mask, table[column].to_numpy(bool))
            if best is None or score > best["jaccard"]:
                best = {"slice": column.removeprefix("slice:"), "jaccard": round(score, 3)}
    return best


def discover(run_dir: Path, settings: DiscoveryConfig, candidates: list[str] | None = None,
             dimension: str = ALL_DIMENSIONS) -> dict:
    """Search and confirm on a finished run directory; returns the discovery record
    (see write_discovery)."""
    return discover_run(*read_run(run_dir), settings, candidates, dimension)


def discover_run(run: RunDir, table: pd.DataFrame, settings: DiscoveryConfig,
                 candidates: list[str] | None = None,
                 dimension: str = ALL_DIMENSIONS) -> dict:
    """Search and confirm on a run and its predictions table indexed by id (indexed)."""
    from validator.data.slices.dsl import with_derived_columns

    run_dir = run.directory
    for name in candidates or []:
        if name not in run.candidates:
            raise ValidatorError(f"--candidate: unknown candidate {name!r} (candidates of "
                                 f"{run_dir}: {', '.join(run.candidates)})")
    if dimension not in (ALL_DIMENSIONS, *run.dimensions):
        raise ValidatorError(f"--dimension: unknown dimension {dimension!r} (valid: "
                             f"{ALL_DIMENSIONS}, {', '.join(run.dimensions)})")
    metadata, columns, note = sample_metadata(run, table.index, settings.columns)
    frame = metadata.copy()
    frame[run.text_column] = table["text"].to_numpy()
    frame = with_derived_columns(frame, run.text_column)
    in_search = search_half(table.index, run.seed)
    features = build_features(frame, columns, run.text_column, in_search)
    masks = feature_masks(features, frame)
    splits = masks[in_search].any(axis=0) & ~masks[in_search].all(axis=0)  # others split nothing
    features, masks = [f for f, keep in zip(features, splits) if keep], masks[:, splits]
    human = table[[f"human:{d}" for d in run.dimensions]]
    labelled = not settings.label_free and bool(human.notna().to_numpy().any())
    names: dict[tuple, str] = {}
    slices, overall = [], {}
    for candidate in candidates or run.candidates:
        found, overall[candidate] = _discover_candidate(run, table, candidate, dimension,
                                                        settings, labelled, features,
                                                        masks, in_search, names)
        slices += found
    return {
        "run_dir": str(run_dir), "candidates": list(candidates or run.candidates),
        "signal": "human ratings" if labelled else "label-free",
        "metric": run.gate.metric if labelled else "rounded rating changes",
        "unit": run.gate.unit if labelled else "percentage points",
        "confidence": run.gate.confidence, "dimension": dimension,
        "split": {"by": "sha256 of 'seed:id', even first byte = search", "seed": run.seed,
                  "search_rows": int(in_search.sum()),
                  "confirm_rows": int((~in_search).sum())},
        "features": {"columns": columns, "count": len(features), "note": note},
        "settings": settings.model_dump(mode="json"), "overall": overall, "slices": slices}


def _discover_candidate(run, table, candidate, dimension, settings, labelled, features,
                        masks, in_search, names) -> tuple[list[dict], dict]:
    if labelled:
        sums, weights, measured = labelled_signal(run, table, candidate, dimension)
    else:
        (sums, weights), measured = (change_signal(run, table, candidate, dimension),
                                     "rounded rating changes (label-free)")
    rows = weights > 0
    searched, kept = in_search & rows, ~in_search & rows
    families = np.unique([f.family for f in features], return_inverse=True)[1]
    found = search(masks[searched], families, sums[searched], weights[searched],
                   settings.min_rows, settings.max_conditions) if features else []
    chosen = pick(found, masks & rows[:, None], searched, (sums, weights), settings.max_slices)
    for group, _ in chosen:
        names.setdefault(group.features, _name([features[j] for j in group.features],
                                               set(names.values())))
    confirm_masks = {names[g.features]: mask[kept] for g, mask in chosen}
    if labelled:
        figures, overall = confirm_labelled(run, table[kept], candidate, dimension,
                                            confirm_masks, settings.min_rows,
                                            (sums[kept], weights[kept]))
    else:
        figures = confirm_label_free(sums[kept], weights[kept], confirm_masks,
                                     run.gate.confidence, settings.min_rows)
        overall = {"n_confirm": int(kept.sum()),
                   "change_rate": float(sums[kept].sum() / weights[kept].sum())
                   if kept.any() else None}
    total = weights[searched].sum()
    overall["search_effect"] = float(sums[searched].sum() / total) if total else None
    overall["measured"] = measured
    changes = change_signal(run, table, candidate, dimension)[0]
    return [{"name": names[g.features], "candidate": candidate,
             "conditions": [features[j].label for j in g.features],
             "where": _where([features[j] for j in g.features]),
             "n_search": g.rows, "search_effect": g.effect,
             **figures[names[g.features]], "overlap": overlap(mask, table),
             "examples": example_ids(mask, changes, table.index)}
            for g, mask in chosen], overall


def example_ids(mask: np.ndarray, changes: np.ndarray, ids: pd.Index) -> list[str]:
    """Up to EXAMPLES ids of the group's rows whose rounded rating changed, those with
    the most dimensions changed first (then in table order)."""
    rows = np.flatnonzero(mask & (changes > 0))
    rows = rows[np.argsort(-changes[rows], kind="stable")][:EXAMPLES]
    return [str(i) for i in ids[rows]]


def describe(entry: dict, record: dict) -> str:
    """One description stating effect, CI, rows, confirmation and overlap."""
    level = f"{record['confidence']:.0%} CI"
    p = entry.get("p_value_adjusted")
    stats = (f"{entry['n_confirm']} confirmation rows, {level} {entry['ci_low']:.3g} to "
             f"{entry['ci_high']:.3g}, BH-adjusted p={p:.2g}" if p is not None
             else f"{entry['n_confirm']} confirmation rows")
    effect = entry["degradation"]
    if record["signal"] == "label-free":
        what = (f"rounded ratings change {abs(effect):.3g} points "
                f"{'more' if effect >= 0 else 'less'} often than in the other rows"
                if effect is not None else "no change measured")
    else:
        what = f"{record['metric']} drops {effect:.3g} {record['unit']} against the reference"
        if entry.get("excess") is not None:
            p_excess = entry["excess_p_adjusted"]
            more = "more" if entry["excess"] >= 0 else "less"
            stats += (f"; {abs(entry['excess']):.3g} {more} than in the other rows, "
                      f"BH-adjusted p={p_excess:.2g}" if p_excess is not None else "")
    verdict = ("confirmed" if entry["confirmed"] else "not confirmed") + \
        " on the half it was not found on"
    text = (f"{entry['candidate']}: {what} ({stats}); found on {entry['n_search']} search "
            f"rows; {verdict}")
    if entry["overlap"]:
        text += (f"; overlaps configured slice '{entry['overlap']['slice']}' (Jaccard "
                 f"{entry['overlap']['jaccard']:.2f})")
    return text + "."


def to_yaml(record: dict) -> str:
    """Confirmed groups as slices (one per condition, every candidate described);
    the rest as comments, for review."""
    slices: dict[str, dict] = {}
    unconfirmed = []
    for entry in record["slices"]:
        if not entry["confirmed"]:
            unconfirmed.append(f"#   {entry['name']}: {describe(entry, record)}")
            continue
        known = slices.setdefault(entry["name"], {"name": entry["name"], "description": "",
                                                  "where": entry["where"]})
        known["description"] = " ".join(filter(None, [known["description"],
                                                      describe(entry, record)]))
    header = [f"# Slices discovered by `validator discover` in {record['run_dir']}",
              f"# ({record['signal']}, {record['metric']}, dimension {record['dimension']}).",
              "# Searched on one half of the rows (hash of the id), confirmed on the other",
              "# with the gate's statistics; review before adding to your slices.",
              *(["# Not confirmed:", *unconfirmed] if unconfirmed else [])]
    body = yaml.safe_dump({"slices": list(slices.values())}, sort_keys=False,
                          allow_unicode=True, width=100)
    return "\n".join(header) + "\n" + body


def figures_json(record: dict) -> str:
    return json.dumps(record, indent=2, ensure_ascii=False, allow_nan=False)


def write_discovery(record: dict, path: Path) -> tuple[Path, Path]:
    """The YAML slices at ``path`` and every figure beside it (same name, .json)."""
    figures = path.with_suffix(".json")
    check_replaceable([path, figures])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, to_yaml(record))
    write_text(figures, figures_json(record))
    return path, figures
