"""One typed reader of a finished run directory: ``RunDir``.

Every command that reads a run after the verdict (``report``, ``report --baseline``,
``recommend``, ``discover``, ``diagnose``, ``repair``) reads it through ``RunDir.read``,
which refuses (exit 2, naming the file) a folder whose files do not match the run:

- summary.json is validated against the typed record (``schema.RunRecord``);
- every file summary.json lists under ``outputs`` (predictions.parquet, report.html,
  ...) must have the sha256 recorded there, and every file the folder's manifest lists
  (what ``report``, ``recommend``, ``discover``, ``diagnose``, ``repair`` wrote beside
  the run later: ``validator.record.ownership``) the sha256 recorded there; a file the
  tool wrote again later (a report re-rendered by ``validator report``, slices found
  again by ``validator discover``) matches its manifest entry instead; predictions.parquet
  is never written again and must match summary.json;
- every stored verdict (each check's, the counts, the run's verdict and exit code) must
  be the one the gate's own rules give for the checks' numbers (``verdicts``).

With ``SLICE_VALIDATOR_CACHE_KEY`` set, the folder's manifest must be signed with it.
A run written before ``outputs`` existed has no hashes to check: it is read, with a
warning on stderr (refused when a key is set). Nothing outside this module looks keys up in summary.json.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from validator.errors import ValidatorError
from validator.cache import signing_key
from validator.record.ownership import MANIFEST_NAME, file_sha256, manifest_signed, read_manifest
from validator.record.schema import GateRecord, RunRecord, SliceRecord, read_record
from validator.record.verdicts import check_same_rows, check_verdicts

SUMMARY, PREDICTIONS = "summary.json", "predictions.parquet"
RENDERED = ("report.html", "summary.md", "junit.xml")  # redrawn by `report` when missing


@dataclass
class RunDir:
    """A run: its folder, validated record and predictions table (one row per gate row,
    in file order), and the verified files written beside them."""
    directory: Path
    record: RunRecord
    table: pd.DataFrame
    side_files: dict[str, Path] = field(default_factory=dict)
    memo: dict = field(default_factory=dict)  # values the after-commands derive once

    @classmethod
    def read(cls, directory: Path) -> "RunDir":
        for name in (SUMMARY, PREDICTIONS):
            if not (directory / name).is_file():
                raise ValidatorError(f"{directory / name}: not found; is {directory} a run "
                                     f"directory?")
        record = read_record(directory / SUMMARY)
        side = verify_files(directory, record)
        check_verdicts(record, str(directory / SUMMARY))
        try:
            table = pd.read_parquet(directory / PREDICTIONS)
        except (ValueError, OSError) as exc:
            raise ValidatorError(f"{directory / PREDICTIONS}: cannot read the predictions "
                                 f"({exc})") from exc
        check_same_rows(record, table, str(directory / SUMMARY))
        run = cls(directory, record, table, side)
        run.require_columns([f"{s}:{d}" for s in (run.reference, *run.candidates)
                             for d in run.dimensions])
        return run

    # -- what the record says, typed ---------------------------------------------------
    @property
    def summary_path(self) -> Path:
        return self.directory / SUMMARY

    @property
    def gate(self) -> GateRecord:
        return self.record.gate

    @property
    def dimensions(self) -> list[str]:
        return list(self.record.rubric.dimensions)

    @property
    def scale(self) -> tuple[int, int]:
        return tuple(self.record.rubric.scale)

    @property
    def seed(self) -> int:
        return self.record.config.seed

    @property
    def reference(self) -> str:
        return self.record.reference.name

    @property
    def candidates(self) -> list[str]:
        """Every candidate, routed ones included."""
        return [s.name for s in self.record.candidates]

    @property
    def model_candidates(self) -> list[str]:
        """The candidates that are models (not routed among other scorers)."""
        return [s.name for s in self.record.candidates if s.backend != "route"]

    @property
    def slices(self) -> dict[str, SliceRecord]:
        return {s.name: s for s in self.record.slices}

    @property
    def sample_path(self) -> Path:
        return Path(self.record.sample.path)

    @property
    def sample_sha256(self) -> str:
        return self.record.sample.sha256

    @property
    def text_column(self) -> str:
        return self.record.sample.text_column

    def gate_settings(self) -> dict:
        """The gate's config keys as run, as plain data (to build a config from)."""
        from validator.config import GateConfig

        gate = self.gate.model_dump(mode="json", by_alias=True)
        return {key: value for key, value in gate.items() if key in GateConfig.model_fields}

    # -- the predictions table ---------------------------------------------------------
    def require_columns(self, columns: list[str]) -> None:
        missing = [c for c in columns if c not in self.table.columns]
        if missing:
            raise ValidatorError(f"{self.directory / PREDICTIONS}: missing column "
                                 f"{missing[0]!r}")

    def scores(self, scorer: str) -> np.ndarray:
        return self.table[[f"{scorer}:{d}" for d in self.dimensions]].to_numpy(dtype=float)

    def mask(self, slice_name: str) -> np.ndarray:
        return self.table[f"slice:{slice_name}"].to_numpy(dtype=bool)

    @property
    def weights(self) -> np.ndarray:
        """Traffic weight per gate row, summing to 1 (the production mix, else equal)."""
        weights = (self.table["traffic_weight"].to_numpy(dtype=float)
                   if "traffic_weight" in self.table else np.ones(len(self.table)))
        return weights / weights.sum()


def _mismatch(path: Path, where: str) -> ValidatorError:
    return ValidatorError(f"{path}: does not match the sha256 {where} records for it "
                          f"(changed after the run wrote it); refusing to read the run")


def verify_files(directory: Path, record: RunRecord) -> dict[str, Path]:
    """Check every listed file against its sha256; returns the side files (name ->
    path: everything listed beside summary.json and predictions.parquet)."""
    manifest = read_manifest(directory) or {}
    if not manifest_signed(directory) or (signing_key() is not None and not manifest):
        raise ValidatorError(f"{directory / MANIFEST_NAME}: not signed with "
                             f"SLICE_VALIDATOR_CACHE_KEY; refusing to read the run")
    if not record.outputs:
        print(f"warning: {directory / SUMMARY} records no output hashes (written before "
              f"they existed): its files are read unverified", file=sys.stderr)
    if record.outputs and PREDICTIONS not in record.outputs:
        raise ValidatorError(f"{directory / SUMMARY}: outputs lists no {PREDICTIONS}")
    for name, digest in record.outputs.items():
        path = directory / name
        if not path.is_file() and name in RENDERED:
            continue  # rendered from summary.json and the predictions: `report` redraws it
        if not path.is_file():
            raise ValidatorError(f"{path}: listed in {SUMMARY} outputs but missing")
        actual = file_sha256(path)
        rewritten = name != PREDICTIONS and manifest.get(name) == actual
        if actual != digest and not rewritten:
            raise _mismatch(path, SUMMARY)
    for name, digest in manifest.items():
        path = directory / name
        if name in record.outputs or not path.is_file():
            continue  # a side file its command's user removed is not read
        if file_sha256(path) != digest:
            raise _mismatch(path, MANIFEST_NAME)
    listed = {*record.outputs, *manifest}
    return {name: directory / name for name in sorted(listed)
            if name not in (SUMMARY, PREDICTIONS) and (directory / name).is_file()}
