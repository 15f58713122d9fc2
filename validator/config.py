"""The run configuration (YAML, schema v1): parsing, validation and the embedded default.

Unknown keys are errors. Relative paths are resolved against the config file's
folder (the embedded default, ``assets/default.yaml``, against the installed package).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr,
                      ValidationError, field_validator, model_validator)

from validator.assets import asset
from validator.bounded_yaml import load_yaml_file
from validator.errors import ConfigError, validation_message
from validator.route_checks import check_routes


HUMAN = "human"  # predictions.parquet's human:{dimension} columns
RESERVED_EXAMPLES = ("_majority", "_human_ceiling")  # pseudo-scorers in summary.json


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ProductionMix(StrictModel):
    column: str
    shares: dict[str, float] = Field(min_length=1)
    tolerance: float = Field(default=0.05, gt=0, lt=1)
    severity: Literal["error", "warning"] = "warning"


class SampleConfig(StrictModel):
    path: Path
    id_column: str = "id"
    text_column: str = "text"
    where: dict[str, Any] | None = None
    allowed_values: dict[str, list[str | int | float | bool]] | None = None
    production_mix: ProductionMix | None = None
    serving_columns: list[str] | None = None  # known at request time (routing may read)
    rating_plan: Path | None = None  # PLAN.csv from `validator plan-ratings` (issue 23)


MAX_SCALE_WIDTH = 100  # rating points between the scale's ends; kappa holds (width+1)^2 cells


class RubricConfig(StrictModel):
    scale: tuple[int, int] = (1, 5)
    dimensions: dict[str, str | list[str]] = Field(min_length=1)

    @field_validator("scale")
    @classmethod
    def _bounded(cls, scale):
        # checked here, before anything is sized by the scale (kappa's confusion matrix
        # and its bootstrap one-hot grow with the square of the number of levels)
        low, high = scale
        if low >= high:
            raise ValueError(f"scale must be [low, high] with low < high, got {list(scale)}")
        if high - low > MAX_SCALE_WIDTH:
            raise ValueError(f"a rating scale at most {MAX_SCALE_WIDTH} points wide is "
                             f"supported, got {list(scale)} ({high - low} points), e.g. "
                             f"[1, 5] or [0, 100]")
        return scale

    @model_validator(mode="after")
    def _check(self) -> "RubricConfig":
        for name, raters in self.dimensions.items():
            if name.startswith("_") or ":" in name:
                raise ValueError(f"dimension name {name!r} may not start with '_' or contain ':'")
            if isinstance(raters, list) and not raters:
                raise ValueError(f"dimension {name!r} lists no rater columns")
        return self

    def rater_columns(self, dimension: str) -> list[str]:
        raters = self.dimensions[dimension]
        return [raters] if isinstance(raters, str) else list(raters)


class CalibrationConfig(StrictModel):
    where: dict[str, Any] = {"split": "calibration"}
    rows: int = Field(default=2000, ge=1)


class ScorerConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    backend: str | None = None
    model: str | None = None
    from_: Literal["reference"] | None = Field(default=None, alias="from")
    recipe: str | None = None
    columns: str | dict[str, str] | None = None
    batch_size: int = Field(default=32, ge=1)
    max_length: int | None = Field(default=None, ge=8)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    runtime: Literal["eager", "torchscript"] | None = None  # torch models; None: eager, or
                                                           # the reference's for recipes
    graph_optimization: Literal["disabled", "basic", "extended", "all"] = "all"
    calibration: CalibrationConfig = CalibrationConfig()
    route: list[Any] | None = None  # a routed candidate: rules over other scorers
    # dimension -> the model's id2label name or output index (default: the dimension's name)
    outputs: dict[str, str | Annotated[int, Field(ge=0)]] | None = None
    output_scale: tuple[float, float] | None = None  # model range mapped onto rubric.scale
    # layers a quantizing recipe keeps in full precision: node/module names or patterns
    exclude: list[Annotated[str, Field(min_length=1)]] | None = None
    _key: str = PrivateAttr(default="")  # where this scorer sits in the file

    @property
    def key(self) -> str:
        return self._key

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name == HUMAN or name.startswith("_"):
            raise ValueError(f"reserved for the tool's own columns and pseudo-scorers ("
                             f"'human', and names starting with '_' such as "
                             f"{', '.join(RESERVED_EXAMPLES)})")
        return name

    @field_validator("columns")
    @classmethod
    def _only_dimension_placeholder(cls, columns):
        if isinstance(columns, str):
            stray = re.search(r"\{[^{}]*\}|[{}]", columns.replace("{dimension}", ""))
            if stray:
                raise ValueError(f"the template may use only the placeholder '{{dimension}}', "
                                 f"found {stray.group()!r}")
        return columns

    @field_validator("output_scale")
    @classmethod
    def _increasing(cls, scale):
        if scale is not None and not (math.isfinite(scale[0]) and math.isfinite(scale[1])
                                      and scale[0] < scale[1]):
            raise ValueError(f"must be [low, high] with low < high, got {list(scale)}")
        return scale

    @model_validator(mode="after")
    def _check(self) -> "ScorerConfig":
        if self.route is not None:  # targets: route_checks; slices: validator.routing
            if any(v is not None for v in (self.backend, self.model, self.from_,
                                           self.recipe, self.columns)):
                raise ValueError("a routed scorer takes 'route' and no 'backend'/'model'/"
                                 "'from'/'recipe'/'columns'")
            return self
        if (self.outputs is not None or self.output_scale is not None) and \
                (self.from_ is not None or self.backend == "columns"):
            raise ValueError("'outputs' and 'output_scale' apply to model backends "
                             "(transformers, onnxruntime); a recipe uses its reference's")
        if self.exclude is not None and self.from_ is None:
            raise ValueError("'exclude' applies to a recipe candidate ('from: reference'), "
                             "whose recipe quantizes the reference")
        if self.from_ is not None:
            if self.recipe is None or self.backend is not None or self.model is not None:
                raise ValueError("a scorer with 'from' needs 'recipe' and no 'backend'/'model'")
        elif self.backend is None:
            raise ValueError("give either 'backend' (with 'model' or 'columns') "
                             "or 'from: reference' with a 'recipe'")
        elif self.backend == "columns" and self.columns is None:
            raise ValueError("the columns backend needs 'columns' (a template such as "
                             "'{dimension}_pred' or a mapping dimension -> column)")
        elif self.backend != "columns" and self.model is None:
            raise ValueError(f"backend {self.backend!r} needs 'model'")
        if self.runtime is not None and self.backend in ("onnxruntime", "columns"):
            raise ValueError(f"'runtime' applies to torch models (backend 'transformers' or "
                             f"a torch-* recipe), not to backend {self.backend!r}")
        return self


def _threshold(value: float) -> float:
    # NaN compares false with everything, so a NaN max_drop would let checks pass
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a finite number >= 0")
    return value


MaxDrop = Annotated[float, AfterValidator(_threshold)]  # a tolerated degradation


class Override(StrictModel):
    slice: str | None = None
    dimension: str | None = None
    candidate: str | None = None
    max_drop: MaxDrop

    @property
    def specificity(self) -> int:
        return sum(x is not None for x in (self.slice, self.dimension, self.candidate))

    def matches(self, candidate: str, slice_name: str, dimension: str) -> bool:
        return all(want is None or want == got for want, got in
                   ((self.slice, slice_name), (self.dimension, dimension),
                    (self.candidate, candidate)))


class GateConfig(StrictModel):
    metric: str = "exact_agreement"
    max_drop: MaxDrop = 1.0  # without the key: the metric's own default (below)
    allow_wide_max_drop: bool = False  # thresholds beyond validator.plan.WIDE_SHARE of the range
    # the location guard's threshold (MAE degradation, rating points) for metrics that
    # declare a guard; default: the guard metric's own max_drop
    guard_max_drop: MaxDrop | None = None
    overrides: list[Override] = []
    min_rows: int = Field(default=50, ge=1)
    on_inconclusive: Literal["fail", "warn"] = "fail"
    policy: Literal["point", "confident", "non_inferiority"] = "confident"
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    bootstrap_resamples: int = Field(default=1000, ge=100, le=100_000)  # 1e5: minutes
    correction: Literal["none", "holm", "bh"] = "holm"
    false_fail_budget: float = Field(default=0.05, gt=0, lt=0.5)  # per run, family-wise
    max_concentration: float | None = Field(default=None, gt=0, le=1)  # off by default

    @model_validator(mode="before")
    @classmethod
    def _metric_default(cls, data: Any) -> Any:
        """Without a ``max_drop`` key, the metric's own default in its unit
        (docs/thresholds.md): exact_agreement's is 1.0 point, as it always was."""
        if isinstance(data, dict) and "max_drop" not in data:
            from validator.metrics import METRICS  # lazy: numpy/scipy only when parsing

            name = data.get("metric", "exact_agreement")
            metric = METRICS.get(name) if isinstance(name, str) else None
            if metric is not None:
                return {**data, "max_drop": metric.max_drop}
        return data

    def max_drop_for(self, candidate: str, slice_name: str, dimension: str) -> float:
        """The most specific matching override wins; among equals, the later one."""
        best, best_rank = self.max_drop, -1
        for override in self.overrides:
            if override.matches(candidate, slice_name, dimension) and \
                    override.specificity >= best_rank:
                best, best_rank = override.max_drop, override.specificity
        return best


Price = Annotated[float, Field(gt=0)]


class CostConfig(StrictModel):
    requests_per_month: float = Field(gt=0)
    instance_cost_per_hour: float = Field(gt=0)
    # a scorer on a device listed here is priced at that device's instance (a GPU
    # reference and CPU candidates); others at instance_cost_per_hour
    instance_cost_per_hour_by_device: dict[Literal["cpu", "cuda"], Price] | None = None


class ReportConfig(StrictModel):
    out: Path = Path("reports")
    cost: CostConfig | None = None  # projected monthly serving cost per scorer
    slo_ms: float = Field(default=500.0, gt=0)  # p95 latency SLO that capacity is measured at
    instance_memory_gb: float | None = Field(default=None, gt=0)  # replicas fitting in it


IsaFeature = Literal["avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_tile",
                     "amx_int8", "amx_bf16"]  # validator.cpu.ISA_FEATURES


class ServingConfig(StrictModel):
    """Where production serves: a run on a CPU lacking a listed feature is inconclusive."""
    isa: list[IsaFeature] = []


class DiscoveryConfig(StrictModel):
    """Slices nobody defined, searched after the verdict (validator/after/discover.py)."""
    enabled: bool = False
    max_slices: int = Field(default=10, ge=1, le=100)
    min_rows: int = Field(default=30, ge=5)
    max_conditions: int = Field(default=2, ge=1, le=3)
    label_free: bool = False
    columns: list[str] | None = None  # metadata columns to search (default: detected)


class ExecutionConfig(StrictModel):
    """Where model scoring runs (validator/engine.py); metrics and outputs stay here."""
    engine: Literal["local", "ray"] = "local"
    # ray: null starts a Ray instance for the run on this machine; "auto" joins the one
    # `ray start` left here; "ray://host:port" (Ray Client) or "host:port" (GCS) a remote one
    address: str | None = None
    num_workers: int = Field(default=2, ge=1)      # ray: scoring actors per scorer
    batch_size: int = Field(default=1024, ge=1)    # ray: rows per actor call (whole model batches)


class Config(StrictModel):
    sample: SampleConfig
    rubric: RubricConfig
    slices: list[Path] = [Path("slices")]
    reference: ScorerConfig
    candidates: list[ScorerConfig] = Field(min_length=1)
    gate: GateConfig = GateConfig()
    report: ReportConfig = ReportConfig()
    discovery: DiscoveryConfig = DiscoveryConfig()
    serving: ServingConfig = ServingConfig()
    execution: ExecutionConfig = ExecutionConfig()
    seed: int = Field(default=0, ge=0, le=2**32 - 1)  # numpy and pandas' seed range
    _source: str = PrivateAttr(default="<default config>")

    @property
    def source(self) -> str:
        return self._source

    @property
    def scorers(self) -> list[ScorerConfig]:
        return [self.reference, *self.candidates]

    @model_validator(mode="after")
    def _check(self) -> "Config":
        if self.reference.from_ is not None:
            raise ValueError("reference: the reference cannot be made 'from' another scorer")
        self.reference._key = "reference"
        for i, candidate in enumerate(self.candidates):
            candidate._key = f"candidates[{i}]"
        names = [s.name for s in self.scorers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"scorer names must be unique, repeated: {', '.join(duplicates)}")
        for i, override in enumerate(self.gate.overrides):
            if override.dimension not in (None, "_all", *self.rubric.dimensions):
                raise ValueError(f"gate.overrides[{i}].dimension: unknown dimension "
                                 f"{override.dimension!r} (valid: _all, "
                                 f"{', '.join(self.rubric.dimensions)})")
            if override.candidate not in (None, *names[1:]):
                raise ValueError(f"gate.overrides[{i}].candidate: unknown candidate "
                                 f"{override.candidate!r}")
        return self


def _resolve_model(scorer: Any, base: Path) -> Any:
    if isinstance(scorer, dict) and scorer.get("model") not in (None, "default"):
        return {**scorer, "model": str(base / str(scorer["model"]))}
    return scorer


def _resolve(raw: dict, base: Path) -> dict:
    """Make the file paths in a raw config absolute, relative to ``base``."""
    resolved = dict(raw)
    if isinstance(raw.get("sample"), dict):
        resolved["sample"] = {**raw["sample"], **{key: base / str(raw["sample"][key])
                                                  for key in ("path", "rating_plan")
                                                  if raw["sample"].get(key) is not None}}
    if isinstance(raw.get("slices"), list):
        resolved["slices"] = [base / str(p) for p in raw["slices"]]
    if isinstance(raw.get("report"), dict) and "out" in raw["report"]:
        resolved["report"] = {**raw["report"], "out": base / str(raw["report"]["out"])}
    if "reference" in raw:
        resolved["reference"] = _resolve_model(raw["reference"], base)
    if isinstance(raw.get("candidates"), list):
        resolved["candidates"] = [_resolve_model(c, base) for c in raw["candidates"]]
    return resolved


def parse_config(raw: Any, source: str, base: Path) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the config must be a YAML mapping, "
                          f"got {type(raw).__name__}")
    try:
        config = Config.model_validate(_resolve(raw, base))
    except ValidationError as exc:
        first = validation_message(exc.errors()[0])
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
        raise ConfigError(f"{source}: {first}{suffix}") from exc
    config._source = source
    check_routes(config)
    return config


def parse_options(model: type[StrictModel], options: dict):
    """Command-line options through a config section's model: one error naming the
    option (``--max-conditions``) and what is allowed."""
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "--" + str(error["loc"][0]).replace("_", "-")
        raise ConfigError(f"{name}: {error['msg']} (got {error.get('input')!r})") from exc


def load_config(path: Path) -> Config:
    raw = load_yaml_file(path, ConfigError, "config file")
    return parse_config(raw, str(path), path.resolve().parent)


DEFAULT_CONFIG_FILE = asset("default.yaml")
DEFAULT_CONFIG: dict[str, Any] = load_yaml_file(DEFAULT_CONFIG_FILE, ConfigError, "config file")
DEFAULT_DIMENSIONS = tuple(DEFAULT_CONFIG["rubric"]["dimensions"])


def default_config() -> Config:
    """The embedded default (package data): the shipped sample, the default slice pack
    and the default scorer; the run directory goes to ./reports/."""
    return parse_config(DEFAULT_CONFIG, "<default config>", DEFAULT_CONFIG_FILE.parent)
