"""The typed run record: summary.json, schema v1.

Every key of the file is declared here, in the order it is written; unknown keys are
an error, so a record is validated when it is built (before it is written) and when a
run directory is read back (``validator report``). Adding a key to summary.json is one
line in the model that holds it (new keys take a default, so older files still read);
keys are never renamed. A check and a scorer are declared once, as the dataclasses the
run computes (``validator.judge.gate.Check``, ``validator.scoring.ScorerInfo``); their
records here are derived from them. The gate section is the gate config as run
(``GateConfig``) plus the metric's unit and direction, so a config key added there is
recorded too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from validator.config import DiscoveryConfig, GateConfig
from validator.errors import ValidatorError
from validator.judge.gate import Check, Verdict
from validator.scoring import ScorerInfo

SCHEMA_VERSION = 1


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def record_of(form: type, name: str, **typed: tuple[Any, Any]) -> type[Record]:
    """The record of an in-run dataclass (a check, a scorer), so that each is declared
    once: the same fields in the same order, each ``float`` also null (JSON has no NaN:
    an undefined value is written as null) and a NaN default null. ``typed``: a field
    whose record is a typed model where the run holds plain data (name -> (type,
    default))."""
    hints = typing.get_type_hints(form)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(form):
        kind = float | None if hints[field.name] is float else hints[field.name]
        default = field.default
        if default is dataclasses.MISSING:
            default = ...
        elif isinstance(default, float) and math.isnan(default):
            default = None
        fields[field.name] = typed.get(field.name, (kind, default))
    return create_model(name, __base__=Record, __doc__=form.__doc__,
                        __module__=__name__, **fields)


class Tool(Record):
    name: str
    version: str
    python: str
    libraries: dict[str, str]


class Counts(Record):
    passed: int = Field(alias="pass")
    fail: int
    inconclusive: int


class ConfigRecord(Record):
    source: str
    seed: int


class Shares(Record):
    """Shares of simulated runs with each verdict."""
    fail: float
    inconclusive: float
    passed: float = Field(alias="pass")


class Scenario(Record):
    """One simulated scenario of the operating characteristics (validator.judge.operating):
    the run's shares, and each candidate's (its own checks: whether it ships)."""
    name: str
    description: str
    slice: str | None
    slice_rows: int | None
    drop: float
    fail: float
    inconclusive: float
    passed: float = Field(alias="pass")
    fail_standard_error: float
    by_candidate: dict[str, Shares] | None = None  # runs recorded before it: absent


class OperatingCharacteristics(Record):
    runs: int
    method: str
    false_fail: float
    false_block: float
    false_fail_budget: float
    within_budget: bool
    scenarios: list[Scenario]


class LocationGuardRecord(Record):
    """The extra checks a gate metric blind to a shift runs (checks with role
    ``location_guard``): their metric, unit and threshold, and what the gate metric is
    blind to."""
    metric: str
    unit: str
    max_drop: float
    blind_to: str


class GateRecord(GateConfig):
    unit: str
    higher_is_better: bool
    range: list[float] | None = None  # the gate metric's values on this scale (its unit)
    location_guard: LocationGuardRecord | None = None
    operating_characteristics: OperatingCharacteristics | None = None


class SampleRecord(Record):
    path: str
    rows: int
    total_rows: int
    sha256: str
    where: dict[str, Any] | None
    text_column: str


class Rubric(Record):
    scale: tuple[int, int]
    dimensions: list[str]


class CacheCheck(Record):
    """How a scorer's cached predictions were verified this run (validator.cache_check):
    ``rows_checked`` of its ``rows_from_cache`` cached rows, drawn at run time, were
    scored afresh and compared within ``tolerance``; ``catch_probability`` maps a share
    p of edited cached rows to the chance the draw holds at least one of them."""
    rows_from_cache: int
    rows_checked: int
    rows_disagreeing: int
    tolerance: float
    max_difference: float | None
    rescored: bool                  # a disagreement discarded the cache for this run
    chunks_discarded: int           # chunks unsigned or mis-signed under the HMAC key
    signed: bool                    # SLICE_VALIDATOR_CACHE_KEY was set
    catch_probability: dict[str, float]


# scorers[] and checks[]: declared once, as validator.scoring.ScorerInfo and
# validator.judge.gate.Check
ScorerRecord = record_of(ScorerInfo, "ScorerRecord",
                         cache_check=(CacheCheck | None, None))  # a dict in the run


class Deployment(Record):
    """A candidate's traffic mix and what serving it costs (validator.speed.mix)."""
    candidate: str
    traffic: dict[str, float]
    fallback_share: float
    instances: dict[str, int]
    monthly_cost: float
    reference_monthly_cost: float
    saving: float
    sentence: str


class Cost(Record):
    requests_per_month: float
    instance_cost_per_hour: float
    instance_cost_per_hour_by_device: dict[str, float] | None = None  # cpu | cuda
    basis: str
    monthly_cost: dict[str, float | None]
    deployments: list[Deployment] = []


class SpeedProbe(Record):
    latency_texts: int
    latency_batch_size: int
    throughput_rows: int
    selection: str | None = None            # how the probe rows were drawn
    slo_ms: float | None = None
    instance_memory_gb: float | None = None
    ratios_provisional: bool = False        # some candidate's ratio rests on a load > cores


class Cpu(Record):
    """The CPU the run measured on (validator.cpu): INT8 kernels depend on it."""
    model: str
    cores: int
    isa: list[str]
    torch_quantized_engine: str | None
    kernel_overrides: dict[str, str] = {}  # env vars narrowing the kernels' ISA
    onnxruntime: str | None
    serving_isa: list[str]
    missing_isa: list[str]
    reason: str | None


class SliceRecord(Record):
    name: str
    description: str
    file: str
    rows: int
    where: str
    pool_rows: int | None = None     # unrated rows (scored, feeding the design)
    rated_rows: int | None = None    # rows with ratings


class DesignRecord(Record):
    """How the gate estimates from rated rows and the unrated pool (docs/ratings.md)."""
    method: str
    rating_plan: str | None = None   # the plan file; None: rated rows taken as uniform
    pool_rows: int                   # unrated gate rows
    rated_rows: int


CheckRecord = record_of(Check, "CheckRecord")


class Evenness(Record):
    candidate: str
    slice: str
    concentration: float | None
    dimensions_degraded: int
    label: Literal["no loss", "even", "mixed", "concentrated"]


class DataCheck(Record):
    expectation: str
    column: str | None
    kwargs: dict[str, Any]
    severity: Literal["error", "warning"]
    source: str
    status: Literal["pass", "fail"]
    unexpected_count: int | None
    examples: list[str]
    detail: str | None


class MetricValue(Record):
    scorer: str
    slice: str
    dimension: str
    metric: str
    n: int
    value: float | None


class Overlap(Record):
    slice: str                  # the configured slice a discovered one overlaps most
    jaccard: float


class DiscoveredSlice(Record):
    """One group found on the search half and re-measured on the confirmation half
    (validator.after.discover); ``examples`` are ids of its rows whose rounded rating
    changed (predictions.parquet holds them)."""
    name: str
    candidate: str
    conditions: list[str]
    where: dict[str, Any]
    description: str
    n_search: int
    search_effect: float
    n_confirm: int
    degradation: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_value_adjusted: float | None
    excess: float | None = None              # with ratings: worse than the other rows by
    excess_p_adjusted: float | None = None   # this much (label-free: the degradation)
    confirmed: bool
    overlap: Overlap | None
    examples: list[str]


class Discovery(Record):
    """Slices nobody defined, searched at run time (``discovery: {enabled: true}``)."""
    signal: Literal["human ratings", "label-free"]
    metric: str
    unit: str
    dimension: str
    confidence: float
    search_rows: int
    confirm_rows: int
    features: int
    note: str
    settings: DiscoveryConfig
    files: list[str]            # written beside summary.json
    slices: list[DiscoveredSlice]


class RunInfo(Record):
    """Provenance of one run: when it ran, for how long, with which config and code."""
    id: str                      # started_at (compact) + the config and sample hashes
    started_at: str              # ISO-8601, UTC
    duration_s: float
    config_sha256: str           # the config as resolved (the embedded default too)
    tool_version: str
    commit: str | None = None    # the checkout's git commit, when run from one


class RunRecord(Record):
    schema_version: Literal[1]
    tool: Tool
    verdict: Verdict
    exit_code: Literal[0, 1]
    counts: Counts
    warnings: list[str] = []  # what the plan found doubtful but not wrong (calibration rows
    #                           that are also gate rows), shown in the terminal and report
    config: ConfigRecord
    gate: GateRecord
    sample: SampleRecord
    rubric: Rubric
    scorers: list[ScorerRecord] = Field(min_length=2)
    cost: Cost | None
    speed_probe: SpeedProbe
    slices: list[SliceRecord]
    checks: list[CheckRecord]
    evenness: list[Evenness]
    data_checks: list[DataCheck]
    metrics: list[MetricValue]
    discovery: Discovery | None = None
    cpu: Cpu | None = None
    # sha256 of every other file the run wrote (predictions.parquet, report.html, ...);
    # validator.record.run_dir refuses a run folder whose files differ. {}: older runs
    outputs: dict[str, str] = {}
    design: DesignRecord | None = None
    run: RunInfo | None = None      # absent in files written before provenance was recorded

    @property
    def reference(self) -> ScorerRecord:
        return self.scorers[0]

    @property
    def gate_checks(self) -> list[CheckRecord]:
        """The gate metric's checks (one per candidate x slice x dimension), without the
        location guard's (role ``location_guard``, in the guard metric's unit)."""
        return [c for c in self.checks if c.role == "gate"]

    @property
    def candidates(self) -> list[ScorerRecord]:
        return [s for s in self.scorers if s.role == "candidate"]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=2,
                          ensure_ascii=False)


def field_path(location: tuple) -> str:
    """pydantic's error location as the file's key path: ``checks[3].verdict``."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "(top level)"


def describe(error: dict) -> str:
    message = {"extra_forbidden": "unknown key",
               "missing": "required key is missing"}.get(error["type"], error["msg"])
    return f"{field_path(error['loc'])}: {message}"


def build_record(data: dict, source: str = "the run record") -> RunRecord:
    """The record from plain data, validated; ValidatorError naming the first bad field."""
    try:
        return RunRecord.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ValidatorError(f"{source}: {describe(errors[0])}{more}") from exc


def read_record(path: Path) -> RunRecord:
    """summary.json read back and validated (hand-edited or truncated files exit 2)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidatorError(f"{path}: cannot read the run record ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ValidatorError(f"{path}: not valid JSON, truncated or hand-edited? "
                             f"({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    return build_record(data, str(path))
