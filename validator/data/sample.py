"""Load the sample file, check the columns the config names, and pick the gate rows.

The Sample holds the gate rows (``sample.where`` applied) with derived columns, the
human rating per dimension (mean of the raters, NaN where no rater rated), the file's
identity (path, sha256, total rows) for the summary, and the rating design: a row with
no rating in any rater column of any dimension is a pool row (unrated production
traffic: scored, never counted as agreeing or disagreeing), every other row is rated
(a row rated on some dimensions only is rated; its missing dimensions are unrated
pairs, as they always were). Without a rating plan the rated rows are taken as a
uniform subsample of the gate rows: inclusion probability n_rated / n_rows, one
stratum "uniform".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from validator.cache import file_sha256
from validator.config import Config
from validator.errors import SampleError, ValidatorError
from validator.data.expectations import validate_sample
from validator.data.rating_plan import design_columns
from validator.data.slices.dsl import check_columns, evaluate, parse_condition, with_derived_columns

def _read_csv(path: Path, as_text: list[str]) -> pd.DataFrame:
    """Text columns stay text ("None", "N/A" are texts; only an empty cell is missing);
    other columns keep pandas' missing-value words (a rating "N/A" is unrated)."""
    from pandas._libs.parsers import STR_NA_VALUES  # pandas' default missing-value words

    header = pd.read_csv(path, encoding="utf-8", nrows=0).columns
    text = [c for c in as_text if c in header]
    missing = {c: [""] if c in text else sorted(STR_NA_VALUES) for c in header}
    return pd.read_csv(path, encoding="utf-8", keep_default_na=False, na_values=missing,
                       dtype={c: str for c in text})


READERS = {  # path, the columns to read as text -> frame
    ".csv": _read_csv,
    ".parquet": lambda p, as_text: pd.read_parquet(p),
    ".jsonl": lambda p, as_text: pd.read_json(p, lines=True, encoding="utf-8",
                                              dtype=dict.fromkeys(as_text, str) or True),
}
NEWLINE = b"\n"
ID_RULE = "ids are compared as text: str() of the value, then strip()"


@dataclass(frozen=True)
class Sample:
    path: Path
    sha256: str
    total_rows: int
    frame: pd.DataFrame       # gate rows, indexed by id, with derived columns
    source: pd.DataFrame      # every row of the file (calibration sets come from here)
    human: pd.DataFrame       # gate rows x dimensions: mean rating (NaN: unrated)
    text_column: str
    raters: dict[str, np.ndarray] | None = None  # dimension -> (rows, raters) ratings
    checks: tuple[dict, ...] = ()  # expectation results (warnings included), for the report
    design: pd.DataFrame | None = None  # per gate row: rated, inclusion_probability, stratum
    rating_plan: str | None = None      # the plan file the design came from (None: uniform)

    @property
    def row_design(self) -> pd.DataFrame:
        return design_columns(self.human, None) if self.design is None else self.design

    @property
    def weights(self) -> np.ndarray:
        """1 / inclusion probability on rated rows, 0 on pool rows (the design weights)."""
        design = self.row_design
        rated = design["rated"].to_numpy(dtype=bool)
        probability = design["inclusion_probability"].to_numpy(dtype=float)
        return np.divide(1.0, probability, out=np.zeros(len(design)), where=rated)

    @property
    def unequal_weights(self) -> np.ndarray | None:
        """The design weights where rated rows weigh differently (a rating plan), None
        where every rated row weighs the same (plain means are then the estimates)."""
        weights = self.weights
        rated = weights[weights > 0]
        return weights if len(rated) and np.ptp(rated) > 0 else None

    @property
    def texts(self) -> list[str]:
        return self.frame[self.text_column].tolist()

    @property
    def ids(self) -> pd.Index:
        return self.frame.index


def invalid_utf8(path: Path) -> str:
    """Where the first invalid UTF-8 byte of a file is ("byte 812, line 4"), read in
    chunks (pandas' own error counts from the start of its current buffer)."""
    carry, offset, line = b"", 0, 1
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(1 << 20)
            data = carry + chunk
            try:
                data.decode("utf-8")
                done, carry = len(data), b""
            except UnicodeDecodeError as exc:
                if not (chunk and exc.end == len(data) and exc.reason == "unexpected end of data"):
                    line += data.count(NEWLINE, 0, exc.start)
                    return f"{exc.reason} at byte {offset + exc.start}, line {line}"
                done, carry = exc.start, data[exc.start:]  # a character cut by the chunk
            line, offset = line + data.count(NEWLINE, 0, done), offset + done
            if not chunk:
                return "no invalid byte found"


def read_table(path: Path, as_text: tuple[str, ...] = ()) -> pd.DataFrame:
    """The sample file as a frame; ``as_text`` columns (id, text) are read as strings."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise SampleError(f"{path}: unsupported sample format {path.suffix!r} "
                          f"(valid: {', '.join(READERS)})")
    if not path.is_file():
        raise SampleError(f"{path}: sample file not found")
    try:
        frame = reader(path, list(as_text))
    except UnicodeDecodeError as exc:
        raise SampleError(f"{path}: not UTF-8 text ({invalid_utf8(path)})") from exc
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        raise SampleError(f"{path}: cannot read the sample ({exc.__class__.__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if frame.empty:
        raise SampleError(f"{path}: the sample has no rows")
    return frame


def normalised_ids(ids: pd.Series, path: Path) -> pd.Series:
    """Each id as text (str(), then strip(); blank is missing), so 1 and "1" are one id;
    two rows with one id exit 2 naming both (data rows counted from 1)."""
    text = ids.map(lambda value: str(value).strip() or None, na_action="ignore")
    repeated = text[text.notna() & text.duplicated(keep=False)]
    if not repeated.empty:
        first = repeated.iloc[0]
        rows = np.flatnonzero(text.to_numpy() == first)[:2] + 1
        raise SampleError(f"{path}: data rows {rows[0]} and {rows[1]} have the same id "
                          f"{first!r} in column {ids.name!r} ({ID_RULE})")
    return text


def _require_columns(frame: pd.DataFrame, path: Path, columns: dict[str, str]) -> None:
    for column, role in columns.items():
        if column not in frame.columns:
            raise SampleError(f"{path}: missing column {column!r} ({role}); "
                              f"columns present: {', '.join(map(str, frame.columns))}")


def human_ratings(frame: pd.DataFrame,
                  config: Config) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """(mean of the raters per dimension, each rater's ratings); the expectations
    have already checked every rating is numeric and on the scale."""
    means, raters = {}, {}
    for dimension in config.rubric.dimensions:
        columns = config.rubric.rater_columns(dimension)
        numeric = frame[columns].apply(pd.to_numeric, errors="coerce")
        means[dimension] = numeric.mean(axis=1)
        raters[dimension] = numeric.to_numpy(dtype=np.float64)
    return pd.DataFrame(means, index=frame.index), raters



def select_rows(frame: pd.DataFrame, where: dict, label: str) -> pd.DataFrame:
    """The rows matching a slice-DSL condition; ``label`` names it in errors."""
    try:
        condition = parse_condition(where, label)
        check_columns(condition, frame.columns)
        return frame[evaluate(condition, frame)]
    except ValidatorError as exc:
        raise SampleError(str(exc)) from exc


def select_gate_rows(frame: pd.DataFrame, config: Config, path: Path) -> pd.DataFrame:
    if config.sample.where is None:
        return frame
    label = f"{config.source}: sample.where"
    selected = select_rows(frame, config.sample.where, label)
    if selected.empty:
        raise SampleError(f"{label}: selects no rows of {path}")
    return selected


def load_sample(config: Config, expectations=()) -> Sample:
    """Read and validate the sample (great-expectations suite from the config plus
    ``expectations`` from the slice files), then pick the gate rows."""
    path = config.sample.path
    id_col, text_col = config.sample.id_column, config.sample.text_column
    frame = read_table(path, (id_col, text_col))
    required = {id_col: "sample.id_column", text_col: "sample.text_column"}
    for dimension in config.rubric.dimensions:
        for column in config.rubric.rater_columns(dimension):
            required[column] = f"rating for dimension {dimension!r}"
    _require_columns(frame, path, required)
    frame[id_col] = normalised_ids(frame[id_col], path)
    checks = validate_sample(frame, config, list(expectations))
    frame = with_derived_columns(frame.set_index(id_col, drop=False), text_col)
    frame.index = frame.index.astype(str).rename("id")
    gate_rows = select_gate_rows(frame, config, path)
    human, raters = human_ratings(gate_rows, config)
    human = human.astype(np.float64)
    return Sample(path=path, sha256=file_sha256(path), total_rows=len(frame),
                  frame=gate_rows, source=frame, human=human,
                  text_column=text_col, raters=raters, checks=tuple(checks),
                  design=design_columns(human, config.sample.rating_plan),
                  rating_plan=None if config.sample.rating_plan is None else str(config.sample.rating_plan))
