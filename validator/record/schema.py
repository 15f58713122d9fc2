"""The typed run record: summary.json, schema v1.

Every key of the file is declared here, in the order it is written; unknown keys are
an error, so a record is validated when it is built (before it is written) and when a
run directory is read back (``validator report``). Adding a key to summary.json is one
line in the model that holds it (new keys take a default, so older files still read);
keys are never renamed. The gate section is the gate config as run (``GateConfig``)
plus the metric's unit and direction, so a config key added there is recorded too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from validator.config import DiscoveryConfig, GateConfig
from validator.errors import ValidatorError

SCHEMA_VERSION = 1
Verdict = Literal["pass", "fail", "inconclusive"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


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


class Scenario(Record):
    """One simulated scenario of the operating characteristics (validator.judge.operating)."""
    name: str
    description: str
    slice: str | None
    slice_rows: int | None
    drop: float
    fail: float
    inconclusive: float
    passed: float = Field(alias="pass")
    fail_standard_error: float


class OperatingCharacteristics(Record):
    runs: int
    method: str
    false_fail: float
    false_block: float
    false_fail_budget: float
    within_budget: bool
    scenarios: list[Scenario]


class GateRecord(GateConfig):
    unit: str
    higher_is_better: bool
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


class ScorerRecord(Record):
    name: str
    role: Literal["reference", "candidate"]
    backend: str
    runtime: str | None
    recipe: dict[str, Any] | None  # what the recipe did, or None for a loaded scorer
    fingerprint: str | None
    size_bytes: int | None
    parameter_bytes: int | None
    peak_rss_bytes: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    throughput_rows_per_s: float | None
    scoring_seconds: float
    rows_scored: int
    rows_from_cache: int
    speedup_vs_reference: float | None
    throughput_vs_reference: float | None
    size_vs_reference: float | None
    traffic: dict[str, float] | None = None  # share of traffic per model scorer
    # measured alone in a fresh process (validator.speed.isolated); peak_rss_bytes above is the
    # harness process's peak while the scorer scored the gate rows
    memory_bytes: int | None = None
    memory_vs_reference: float | None = None
    latency_ms_mean: float | None = None
    capacity_rps: float | None = None       # requests/s within report.slo_ms (p95)
    capacity_vs_reference: float | None = None
    capacity_levels: list[dict[str, float]] | None = None
    replicas_in_memory: int | None = None   # in report.instance_memory_gb
    memory_bound_capacity_rps: float | None = None
    build_seconds: float | None = None      # loading, exporting, quantizing, calibrating
    score_seconds: float | None = None      # scoring the gate rows through the cache
    speed_from_cache: bool = False          # measured alone by an earlier run, same key
    load_average_1m: float | None = None    # the machine's when it was measured alone
    tokenize_rows_per_s: float | None = None  # tokenising and padding the probe alone
    forward_rows_per_s: float | None = None   # the forward pass on prepared batches alone
    device_memory_bytes: int | None = None    # CUDA allocator's peak (GPU scorers)
    device: str | None = None                 # "cpu" or "cuda <device name>"
    dtype: str | None = None                  # its weights: float32, bfloat16, float16, int8
    comparison: str | None = None             # "same device (cpu)" or "cross-device: ..."
    ratio_rounds: int | None = None           # speedup/throughput ratios: interleaved rounds
    speedup_vs_reference_range: list[float] | None = None     # [lowest, highest] round
    throughput_vs_reference_range: list[float] | None = None
    ratio_load_average_max: float | None = None  # highest load average a ratio rests on
    ratio_provisional: bool = False           # that load exceeded the machine's cores


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


class CheckRecord(Record):
    candidate: str
    slice: str
    dimension: str
    metric: str
    n: int
    reference: float | None
    candidate_value: float | None
    degradation: float | None
    ci_low: float | None
    ci_high: float | None
    max_drop: float
    verdict: Verdict
    reason: str
    p_value: float | None
    p_value_adjusted: float | None
    detectable_degradation: float | None
    flips_to_disagree: int
    flips_to_agree: int
    human_ceiling: float | None
    bootstrap_sd: float | None = None
    p_value_max_drop: float | None = None           # one-sided: H0 degradation <= max_drop
    p_value_max_drop_adjusted: float | None = None  # after gate.correction
    rows_needed: int | None = None                  # inconclusive: rated rows that would decide


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


class RunRecord(Record):
    schema_version: Literal[1]
    tool: Tool
    verdict: Verdict
    exit_code: Literal[0, 1]
    counts: Counts
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

    @property
    def reference(self) -> ScorerRecord:
        return self.scorers[0]

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
