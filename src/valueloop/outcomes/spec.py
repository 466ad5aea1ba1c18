"""The use case file, ``valueloop.yaml``: its schema and its loader.

Every model here forbids unknown fields, so a misspelt key is reported instead of ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Hashable, Mapping
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel, ConfigDict, Field, StrictBool, ValidationError, ValidationInfo, field_validator, model_validator,
)
from pydantic.functional_validators import PlainValidator

from valueloop.durations import RULE, Duration
from valueloop.errors import InvalidInput
from valueloop.outcomes.ai import AiAssessment
from valueloop.outcomes.value import ValueRefused, intended
from valueloop.outcomes.roles import Role
from valueloop.validation import describe_errors

NAME_RULE = r"^[a-z][a-z0-9_-]{1,63}$"
Name = Annotated[str, Field(pattern=NAME_RULE)]


class Strict(BaseModel):
    # .inf or 1e309 as a target would pass (or fail) every comparison, and break the stored JSON
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Comparator(StrEnum):
    lt = "<"
    le = "<="
    gt = ">"
    ge = ">="

    def holds(self, value: float, target: float) -> bool:
        return {
            Comparator.lt: value < target,
            Comparator.le: value <= target,
            Comparator.gt: value > target,
            Comparator.ge: value >= target,
        }[self]


class KPI(Strict):
    """A measurable target: 'churn_rate < 0.08' (business) or 'recall >= 0.7' (model)."""

    name: Name
    kind: Literal["business", "model"]
    metric: str
    comparator: Comparator
    target: float
    unit: str = ""
    description: str = ""

    def met_by(self, value: float) -> bool:
        return self.comparator.holds(value, self.target)

    def __str__(self) -> str:
        return f"{self.metric} {self.comparator.value} {self.target:g}{' ' + self.unit if self.unit else ''}"


class CsvSource(Strict):
    name: Name
    kind: Literal["csv"]
    path: str = Field(description="file or glob, relative to the use case file")
    description: str = ""


class ParquetSource(Strict):
    name: Name
    kind: Literal["parquet"]
    path: str = Field(description="file or glob, relative to the use case file")
    description: str = ""


class SqlSource(Strict):
    name: Name
    kind: Literal["sql"]
    url: str = Field(description="SQLAlchemy URL; ${VAR} is read from the environment")
    query: str
    description: str = ""


class DeltaSource(Strict):
    name: Name
    kind: Literal["delta"]
    path: str
    version: int | None = None
    description: str = ""


Source = Annotated[CsvSource | ParquetSource | SqlSource | DeltaSource, Field(discriminator="kind")]


class DataCheck(Strict):
    """A quality check on the dataset an ingest would commit; an error blocks the version."""

    name: str | None = Field(None, description="default: the check and its column(s)")
    severity: Literal["error", "warning"] = "error"


class TypeCheck(DataCheck):
    check: Literal["type"]
    column: str
    dtype: Literal["integer", "float", "number", "string", "boolean", "date", "timestamp"]


class NotNullCheck(DataCheck):
    check: Literal["not_null"]
    column: str


class UniqueCheck(DataCheck):
    check: Literal["unique"]
    columns: list[str] = Field(min_length=1, description="together they identify a row")


class RangeCheck(DataCheck):
    check: Literal["range"]
    column: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> RangeCheck:
        if self.min is None and self.max is None:
            raise ValueError(f"range check of '{self.column}' needs min, max or both")
        return self


class AllowedValuesCheck(DataCheck):
    check: Literal["allowed_values"]
    column: str
    values: list[str | int | float | bool] = Field(min_length=1)


class PatternCheck(DataCheck):
    check: Literal["pattern"]
    column: str
    pattern: str = Field(description="a regular expression the whole value must match")


class RowCountCheck(DataCheck):
    check: Literal["row_count"]
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)


class FreshnessCheck(DataCheck):
    check: Literal["freshness"]
    column: str = Field(description="a date or timestamp column")
    max_age: Duration = Field(description="the newest value may be this old")


class SqlCheck(DataCheck):
    check: Literal["sql"]
    query: str = Field(description="DuckDB SQL returning the failing rows of the table `dataset`")


Check = Annotated[
    TypeCheck | NotNullCheck | UniqueCheck | RangeCheck | AllowedValuesCheck | PatternCheck
    | RowCountCheck | FreshnessCheck | SqlCheck,
    Field(discriminator="check"),
]


class DataSection(Strict):
    """How an ingest turns the sources into a dataset version."""

    transform: str | None = Field(
        None, description="DuckDB SQL file, relative to the use case file, selecting from the sources by name"
    )
    python: str | None = Field(
        None, pattern=r"^[\w.]+:\w+$", description="module:function, for what SQL cannot express"
    )
    mode: Literal["append", "overwrite"] = "append"
    checks: list[Check] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_transform(self) -> DataSection:
        if self.transform and self.python:
            raise ValueError("data: give transform (a SQL file) or python (module:function), not both")
        return self


class Treatment(StrEnum):
    drop = "drop"
    pseudonymize = "pseudonymize"
    generalize = "generalize"
    keep = "keep"


class ColumnTreatment(Strict):
    """What happens to one personal-data column. ``params`` refine generalize: ``to: year``,
    ``bucket: 10`` or ``prefix: 2``."""

    column: str
    treatment: Treatment
    params: dict[str, Any] = Field(default_factory=dict)
    justification: str = ""

    @model_validator(mode="after")
    def _rules(self) -> ColumnTreatment:
        if self.treatment is Treatment.keep and not self.justification.strip():
            raise ValueError(f"keeping personal column '{self.column}' needs a justification")
        if self.treatment is Treatment.generalize:
            rules = {"to", "bucket", "prefix"} & set(self.params)
            if len(rules) != 1:
                raise ValueError(
                    f"generalize of '{self.column}' needs exactly one of params.to (year|month), "
                    "params.bucket (a number) or params.prefix (a length)"
                )
        return self


def _retention(value: Any) -> Duration | Literal["not stored"]:
    """A duration by the one rule (durations.py), or "not stored" (a dropped column)."""
    if value == "not stored":
        return "not stored"
    try:
        return Duration.checked(value if isinstance(value, str) else "")
    except ValueError:
        raise ValueError(f"{RULE}, or 'not stored' for a dropped column") from None


class PersonalColumn(ColumnTreatment):
    category: str = Field(description="e.g. identifier, contact, demographic, location, financial")
    purpose: str
    legal_basis: Literal[
        "consent", "contract", "legal_obligation", "vital_interest", "public_task",
        "legitimate_interest",
    ]
    #: how long the column's values are kept once recorded (prediction log, labels, dataset
    #: versions past it are removed: operate/retention.py); a dropped column is "not stored"
    retention: Annotated[Duration | Literal["not stored"], PlainValidator(_retention)]

    @model_validator(mode="after")
    def _stored_has_retention(self) -> PersonalColumn:
        if self.retention == "not stored" and self.treatment is not Treatment.drop:
            raise ValueError(f"personal column '{self.column}' is stored ({self.treatment.value}): its "
                             "retention must be a duration such as 730d, not 'not stored'")
        return self


class Risk(Strict):
    risk: str
    mitigation: str


class Privacy(Strict):
    """The DPIA as proposed by the use case team; the privacy officer decides on it."""

    description: str
    purpose: str
    necessity: str = Field(description="necessity and proportionality of the processing")
    risks: list[Risk] = Field(default_factory=list)
    columns: list[PersonalColumn] = Field(default_factory=list)
    ai: AiAssessment | None = Field(None, description="the AI Act assessment: risk class and its duties")

    @field_validator("columns")
    @classmethod
    def _unique_columns(cls, columns: list[PersonalColumn]) -> list[PersonalColumn]:
        seen = [c.column for c in columns]
        dupes = sorted({c for c in seen if seen.count(c) > 1})
        if dupes:
            raise ValueError(f"column(s) declared twice: {', '.join(dupes)}")
        return columns

    def content(self) -> dict[str, Any]:
        """What a DPIA version holds; without an AI assessment, as it was before there was one, so
        that a DPIA decided then keeps its digest."""
        return self.model_dump(mode="json", exclude={"ai"} if self.ai is None else None)


_METRICS = {
    "classification": {"roc_auc", "accuracy", "f1", "precision", "recall", "log_loss", "pr_auc"},
    "regression": {"rmse", "mae", "r2", "mape"},
}
#: Metrics where a smaller value is the better model.
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mape"})


def metrics_of(task: str) -> frozenset[str]:
    return frozenset(_METRICS[task])


class Split(Strict):
    """How the held-out test set is cut; the same seed always gives the same split."""

    kind: Literal["random", "stratified", "time"] = "random"
    test_size: float = Field(0.2, gt=0, lt=1)
    seed: int = 42
    time_column: str | None = Field(None, description="the newest rows form the test set")

    @model_validator(mode="after")
    def _time_needs_column(self) -> Split:
        if (self.kind == "time") != (self.time_column is not None):
            raise ValueError("split.time_column is required by kind time, and only by it")
        return self


class Features(Strict):
    """Model inputs: every column (or only ``include``) minus ``exclude``, the target and the
    identifiers (``identifiers`` or, when not given, ``*_id`` columns and pseudonymized ones)."""

    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    identifiers: list[str] | None = None
    #: features a transform that is not row-level (a join, an aggregate) computes: it cannot run per
    #: request, so the systems that call the model compute them and send them beside the raw record
    upstream: list[str] = Field(default_factory=list)


class ParamRange(Strict):
    """One searched parameter: ``{low, high[, log]}`` (integers when both bounds are) or ``{choices}``."""

    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    choices: list[str | int | float | bool | None] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> ParamRange:
        ranged = self.low is not None and self.high is not None
        if ranged == (self.choices is not None) or (ranged and self.low >= self.high):
            raise ValueError("a parameter range needs low < high, or a list of choices (not both)")
        return self


class Search(Strict):
    """An Optuna search within a budget of trials and/or seconds; an empty space uses the kind's."""

    n_trials: int | None = Field(None, ge=1)
    timeout: float | None = Field(None, gt=0, description="seconds")
    space: dict[str, ParamRange] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _budget(self) -> Search:
        if self.n_trials is None and self.timeout is None:
            raise ValueError("search needs a budget: n_trials, timeout (seconds) or both")
        return self


class Candidate(Strict):
    name: Name
    kind: Literal["logistic", "linear", "random_forest", "lightgbm", "mlp", "custom"]
    params: dict[str, Any] = Field(default_factory=dict)
    function: str | None = Field(
        None, pattern=r"^[\w.]+:\w+$", description="custom only: module:function, train(data, params)"
    )
    baseline: bool = Field(False, description="the others must be no worse; default: the first linear one")
    search: Search | None = None

    @model_validator(mode="after")
    def _custom_needs_function(self) -> Candidate:
        if (self.kind == "custom") != (self.function is not None):
            raise ValueError(f"candidate '{self.name}': function (module:function) is required by "
                             "kind custom, and only by it")
        return self


class Invariance(Strict):
    """A perturbation that must not move the prediction by more than ``tolerance``."""

    column: str
    change: Literal["shuffle", "set", "add"] = "shuffle"
    value: str | int | float | None = None
    tolerance: float = Field(1e-9, ge=0, description="parallel sums differ in the last bits")


class Directional(Strict):
    """Adding ``add`` to a column must move the prediction the ``expect``ed way."""

    column: str
    add: float
    expect: Literal["increase", "decrease"]
    max_violations: float = Field(0.1, ge=0, le=1, description="share of rows allowed to move otherwise")


class SegmentFloor(Strict):
    """Every segment of ``column`` (with at least ``min_rows``) must reach ``floor``."""

    column: str
    floor: float
    metric: str | None = Field(None, description="default: the primary metric")
    min_rows: int = Field(30, ge=1)


class ModelTests(Strict):
    invariance: list[Invariance] = Field(default_factory=list)
    directional: list[Directional] = Field(default_factory=list)
    segment_floors: list[SegmentFloor] = Field(default_factory=list)
    max_seconds_per_row: float = Field(0.005, gt=0)


class ChosenThreshold(Strict):
    """A binary classifier's decision threshold chosen on validation rows (a share of the training
    set, cut with the split's seed) so that the named model KPI holds, e.g. ``recall >= 0.7``."""

    kpi: Name = Field(description="a model KPI of this file on recall, precision, f1 or accuracy")
    validation_size: float = Field(0.2, gt=0, lt=1)


#: Metrics that depend on the decision threshold, so a threshold can be chosen to meet them.
THRESHOLD_METRICS = frozenset({"accuracy", "precision", "recall", "f1"})


class ModelObjective(Strict):
    task: Literal["classification", "regression"]
    target: str
    positive_class: str | int | bool | None = Field(
        None, description="binary classification: the class that recall, precision and f1 are about; "
                          "default: the second of the two sorted classes")
    decision_threshold: Annotated[float, Field(gt=0, lt=1)] | ChosenThreshold | None = Field(
        None, description="binary classification: the positive class's probability from which a row "
                          "is predicted positive (default 0.5), or {kpi: NAME} to choose it")
    primary_metric: str
    threshold: float = Field(description="the primary metric a model must reach to be accepted")
    split: Split = Field(default_factory=Split)
    features: Features = Field(default_factory=Features)
    candidates: list[Candidate] = Field(
        default_factory=list, description="default: a linear baseline and LightGBM"
    )
    segments: list[str] = Field(default_factory=list, description="columns to report metrics per value")
    tests: ModelTests = Field(default_factory=ModelTests)
    compile: StrictBool = Field(
        False, description="compile a registered tree ensemble (LightGBM, scikit-learn's forests and "
                           "gradient boosting) to native code, which serving, batch and stream use; a model "
                           "that cannot be compiled is registered as usual with a note")

    @model_validator(mode="after")
    def _metric_fits_task(self) -> ModelObjective:
        if self.primary_metric not in _METRICS[self.task]:
            raise ValueError(
                f"primary_metric '{self.primary_metric}' does not fit task {self.task}; "
                f"choose one of {', '.join(sorted(_METRICS[self.task]))}"
            )
        for floor in self.tests.segment_floors:
            if floor.metric is not None and floor.metric not in _METRICS[self.task]:
                raise ValueError(f"tests.segment_floors: metric '{floor.metric}' does not fit task "
                                 f"{self.task}; choose one of {', '.join(sorted(_METRICS[self.task]))}")
        names = [c.name for c in self.candidates]
        if len(set(names)) != len(names):
            raise ValueError("candidates: each candidate needs a unique name")
        if sum(c.baseline for c in self.candidates) > 1:
            raise ValueError("candidates: at most one candidate is the baseline")
        if self.split.kind == "stratified" and self.task != "classification":
            raise ValueError("split.kind stratified needs task classification")
        if self.task != "classification" and (self.positive_class is not None or self.decision_threshold is not None):
            raise ValueError("positive_class and decision_threshold need task classification")
        return self

    def identifier(self, column: str, pseudonymized: Collection[str]) -> bool:
        """Whether ``column`` names a row rather than describes it: never a model input."""
        if self.features.identifiers is not None:
            return column in self.features.identifiers
        return column == "id" or column.endswith("_id") or column in pseudonymized

    def not_an_input(self, column: str, treatments: Mapping[str, Treatment]) -> str | None:
        """Why ``column`` is never a model input, as far as the file tells (given the treatments
        of the personal columns); None when it may be one."""
        features = self.features
        pseudonymized = [c for c, t in treatments.items() if t is Treatment.pseudonymize]
        reasons = [
            (column == self.target, "it is model.target"),
            (column == self.split.time_column, "it is model.split.time_column"),
            (treatments.get(column) is Treatment.drop, "the privacy section drops it"),
            (bool(features.include) and column not in features.include, "model.features.include leaves it out"),
            (column in features.exclude, "model.features.exclude lists it"),
            (self.identifier(column, pseudonymized),
             "model.features.identifiers lists it" if features.identifiers is not None else
             "it is an identifier: *_id columns and pseudonymized ones are, unless model.features.identifiers "
             "names the identifiers"),
        ]
        return next((why for hit, why in reasons if hit), None)

    def untestable(self, treatments: Mapping[str, Treatment]) -> list[str]:
        """The per-feature tests (invariance, directional) on a column the model never reads: such
        a test cannot fail, so it proves nothing."""
        problems = []
        for kind, checks in (("invariance", self.tests.invariance), ("directional", self.tests.directional)):
            for i, check in enumerate(checks):
                if (why := self.not_an_input(check.column, treatments)) is not None:
                    problems.append(f"model.tests.{kind}[{i}]: column '{check.column}' is not a model input "
                                    f"({why}); a test of a column the model never reads cannot fail")
        return problems


DriftMethod = Literal["ks", "wasserstein", "chisquare", "jensenshannon", "psi"]


class ColumnDrift(Strict):
    """A per-column override: the test and its threshold (a p-value for ks and chisquare,
    a distance for the others)."""

    method: DriftMethod | None = None
    threshold: float | None = Field(None, gt=0)


class DriftPolicy(Strict):
    """Defaults like Evidently's: ks/chisquare up to 1000 reference rows, wasserstein/jensenshannon
    above; 0.05 for p-values, 0.1 for distances."""

    method: DriftMethod | Literal["auto"] = "auto"
    threshold: float | None = Field(None, gt=0)
    dataset_share: float = Field(0.5, gt=0, le=1, description="dataset drift when this share of columns drifts")
    missing_increase: float = Field(0.05, ge=0, le=1, description="flag a column whose null share rises by this")
    columns: dict[str, ColumnDrift] = Field(default_factory=dict)


class Window(Strict):
    """Windows over the prediction log: by time (``every: 1d``) or by count (``rows: 1000``)."""

    every: Duration | None = None
    rows: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_kind(self) -> Window:
        if (self.every is None) == (self.rows is None):
            raise ValueError("window needs exactly one of every (a duration such as 1d) or rows (a count)")
        return self


class AlertRule(Strict):
    """Alert when a monitored value (``dataset_drift_share``, ``drift.COLUMN``, ``missing.COLUMN``,
    ``performance.METRIC``, ``estimated.METRIC``, ``error_rate``, ``latency_p95_seconds``,
    ``kpi.NAME`` ...) compares to ``threshold``."""

    name: Name
    metric: str
    comparator: Comparator
    threshold: float
    routes: list[str] = Field(default_factory=lambda: ["log"])
    dedup: Duration = Field(Duration("1h"), description="one alert per rule within this time")


class Route(Strict):
    """Where alerts go besides the log: a webhook (HTTP POST of JSON) or e-mail over SMTP."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: Name
    kind: Literal["webhook", "email"]
    url: str | None = None
    timeout: float = Field(5.0, gt=0, description="seconds per delivery attempt")
    retries: int = Field(3, ge=1, le=10, description="attempts before the delivery is marked failed")
    host: str | None = None
    port: int = Field(25, ge=1, le=65535)
    sender: str | None = Field(None, alias="from")
    to: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Route:
        if self.kind == "webhook" and not self.url:
            raise ValueError(f"route '{self.name}': kind webhook needs url")
        if self.kind == "email" and not (self.host and self.sender and self.to):
            raise ValueError(f"route '{self.name}': kind email needs host, from and to")
        return self


#: what may start a retraining: ``erasure`` is a data subject's erasure from the data a serving
#: model (champion or challenger) was trained on
Trigger = Literal["drift", "performance", "schedule", "manual", "erasure"]


class RetrainPolicy(Strict):
    """The closed loop: when to retrain, and whether a better challenger is promoted unasked."""

    triggers: list[Trigger] = Field(
        default_factory=lambda: ["manual"])
    schedule: str | None = Field(None, description="cron expression (5 fields), for the schedule trigger")
    auto_promote: bool = False
    margin: float = Field(0.0, ge=0, description="how much the challenger must beat the champion by")
    rollout: Literal["direct", "shadow", "canary"] = "direct"
    min_labels: int = Field(50, ge=1, description="labeled rows the comparison needs")
    candidates: list[str] = Field(default_factory=list,
                                  description="model.candidates to retrain (the baseline always); default all")

    @model_validator(mode="after")
    def _schedule(self) -> RetrainPolicy:
        if ("schedule" in self.triggers) != (self.schedule is not None):
            raise ValueError("retrain.schedule (a cron expression) is required by the schedule trigger, "
                             "and only by it")
        if self.schedule is not None and len(self.schedule.split()) != 5:
            raise ValueError(f"retrain.schedule: expected a 5-field cron expression, got {self.schedule!r}")
        return self


class Operate(Strict):
    """Monitoring and the retraining policy of a use case in production."""

    window: Window = Field(default_factory=lambda: Window(every=Duration("1d")))
    drift: DriftPolicy = Field(default_factory=DriftPolicy)
    performance_metric: str | None = Field(None, description="default: the model's primary metric")
    metrics_url: str | None = Field(None, description="the REST server's /metrics, for error rate and latency")
    every: Duration = Field(Duration("1h"), description="how often the scheduler runs the monitor")
    alerts: list[AlertRule] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    retrain: RetrainPolicy = Field(default_factory=RetrainPolicy)

    @model_validator(mode="after")
    def _routes_known(self) -> Operate:
        names = [r.name for r in self.routes]
        if "log" in names or len(set(names)) != len(names):
            raise ValueError("routes: each route needs a unique name other than 'log' (the built-in route)")
        for rule in self.alerts:
            unknown = sorted(set(rule.routes) - {"log", *names})
            if unknown:
                raise ValueError(f"alerts.{rule.name}: unknown route(s) {', '.join(unknown)}; "
                                 f"declared: log, {', '.join(names) or '(none)'}")
        return self


class Members(Strict):
    """User names per role; the owner and sponsor are given at the top of the file."""

    analyst: list[str] = Field(default_factory=list)
    expert: list[str] = Field(default_factory=list)
    data_engineer: list[str] = Field(default_factory=list)
    data_scientist: list[str] = Field(default_factory=list)
    developer: list[str] = Field(default_factory=list)
    operations: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _no_privacy_officer(cls, data: Any) -> Any:
        if isinstance(data, dict) and "privacy_officer" in data:
            raise ValueError("privacy_officer: privacy officers are appointed by the admin "
                             "(`valueloop users appoint NAME`), never by the use case's own file; "
                             "remove this line")
        return data


class Deploy(Strict):
    """How ``valueloop serve`` answers for the use case: micro-batching, timeout, and the
    challenger's rollout (a canary share of live traffic, or a shadow that only sees copies)."""

    max_batch_size: int = Field(64, ge=1, le=4096, description="rows predicted in one model call")
    max_wait_ms: float = Field(0, ge=0, le=1000, description="extra wait to fill a batch; 0 = take what is queued")
    canary: float = Field(0, ge=0, le=1, description="share of requests answered by the challenger")
    shadow: bool = Field(False, description="the challenger predicts a copy of every request, logged only")
    timeout: float = Field(10, gt=0, le=300, description="seconds a prediction request may take")

    @model_validator(mode="after")
    def _one_rollout(self) -> Deploy:
        if self.shadow and self.canary:
            raise ValueError("deploy: choose canary (a share answered by the challenger) or shadow, not both")
        return self


class BatchSchedule(Strict):
    """A batch scoring job that ``valueloop server`` runs on a cron schedule (deploy/schedule.py).
    Its files are relative paths under ``<home>/batch/<use case>/``: the file's author chooses
    what the server reads and writes, so nothing outside that folder."""

    name: Name
    cron: str = Field(description="5 fields (minute hour day month weekday), or 6 with seconds first")
    input: str = Field(description="as `valueloop batch --input`: USECASE@latest, a file, delta:PATH, sql:URL::QUERY")
    output: str = Field(description="as `--output`; {ts} becomes the run's UTC time: scores-{ts}.parquet")
    model: str = "champion"
    run_as: str | None = Field(None, description="a developer or operations member; default: the first operations member")
    overwrite: bool = False

    @field_validator("cron")
    @classmethod
    def _fields(cls, cron: str) -> str:
        if len(cron.split()) not in (5, 6):
            raise ValueError("expected a cron expression of 5 fields (or 6, seconds first)")
        return cron

    @field_validator("input", "output")
    @classmethod
    def _in_batch_folder(cls, text: str, info: ValidationInfo) -> str:
        from valueloop.refs import RULE, DatasetRef, names_a_version

        if info.field_name == "input" and text.startswith("sql:"):
            return text
        if info.field_name == "input" and names_a_version(text):
            if DatasetRef.match(text) is None:
                raise ValueError(RULE)
            return text
        bare = PurePosixPath(text.removeprefix("delta:"))
        if not bare.parts or bare.is_absolute() or ".." in bare.parts or "\\" in text or ":" in str(bare):
            raise ValueError(f"must be a relative path inside <home>/batch/<use case>/ (no '..', no absolute "
                             f"path, no URL), got {text!r}")
        return text


class Value(Strict):
    """The value the use case intends to deliver: ``expression`` over business KPI names and
    ``constants`` (evaluated by outcomes/value.py, never by ``eval``), against its expected cost."""

    expression: str = Field(description="e.g. (baseline_churn - churn_rate) * customers * margin "
                                        "- cost_per_call * calls; + - * / ** and parentheses")
    constants: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")], float] = Field(default_factory=dict)
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR")
    cost: float = Field(0, ge=0, description="the expected cost of the use case per cycle")


class UseCaseSpec(Strict):
    name: Name
    title: str
    business_goal: str
    owner: str
    sponsor: str | None = None
    members: Members = Field(default_factory=Members)
    kpis: list[KPI] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    data: DataSection | None = None
    privacy: Privacy
    model: ModelObjective
    operate: Operate | None = None
    deploy: Deploy | None = None
    batch: list[BatchSchedule] = Field(default_factory=list)
    value: Value | None = None

    @model_validator(mode="after")
    def _cross_checks(self) -> UseCaseSpec:
        names = [k.name for k in self.kpis]
        if len(set(names)) != len(names):
            raise ValueError("kpis: each KPI needs a unique name")
        sources = [s.name for s in self.sources]
        if len(set(sources)) != len(sources):
            raise ValueError("sources: each source needs a unique name")
        chosen = self.model.decision_threshold
        if isinstance(chosen, ChosenThreshold):
            kpi = next((k for k in self.kpis if k.name == chosen.kpi), None)
            if kpi is None or kpi.kind != "model" or kpi.metric not in THRESHOLD_METRICS:
                raise ValueError(f"model.decision_threshold.kpi: '{chosen.kpi}' is not a model KPI of "
                                 f"this file on one of {', '.join(sorted(THRESHOLD_METRICS))}")
        if self.value is not None:
            try:
                intended(self)
            except ValueRefused as exc:
                raise ValueError(f"value.expression: {exc}") from None
        if problems := self.model.untestable({c.column: c.treatment for c in self.privacy.columns}):
            raise ValueError("; ".join(problems))
        return self

    def threshold_kpi(self) -> KPI | None:
        """The model KPI the decision threshold is chosen to meet, if it is chosen."""
        chosen = self.model.decision_threshold
        if not isinstance(chosen, ChosenThreshold):
            return None
        return next(k for k in self.kpis if k.name == chosen.kpi)

    def memberships(self) -> list[tuple[str, Role]]:
        """Every (user, role) pair the file declares, owner and sponsor included."""
        pairs = [(self.owner, Role.owner)]
        if self.sponsor:
            pairs.append((self.sponsor, Role.sponsor))
        for role, users in self.members:
            pairs += [(u, Role(role)) for u in users]
        return pairs

    def digest(self) -> str:
        return digest_of(self.model_dump(mode="json"))


def digest_of(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def parse_spec(data: Any, origin: str = "use case") -> UseCaseSpec:
    try:
        return UseCaseSpec.model_validate(data)
    except ValidationError as exc:
        problems = describe_errors(exc)
        raise InvalidInput(f"{origin} is invalid ({len(problems)} problem(s)):", problems=problems) from None


#: a use case file is a few kilobytes; these bound what a crafted one can cost to parse
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32


def load_spec(path: str | Path) -> UseCaseSpec:
    """Read and validate a use case file, listing every problem with its path."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            content = file.read(MAX_FILE_BYTES + 1)  # never more than the limit, whatever the file
    except FileNotFoundError:
        raise InvalidInput(f"use case file {path}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"use case file {path}: cannot be read ({exc.strerror})") from None
    return parse_spec(parse_yaml(content, str(path)), str(path))


def parse_yaml(content: bytes, origin: str) -> Any:
    """The data of one YAML document of UTF-8 bytes, from a file or an upload named ``origin``.

    Refused as InvalidInput naming ``origin`` and the place: more than MAX_FILE_BYTES, bytes that
    are not UTF-8, anchors and aliases (an alias bomb of 4 KB expands to gigabytes), nesting deeper
    than MAX_DEPTH, a duplicate key, and a value YAML cannot construct (a 30th of February).
    """
    if len(content) > MAX_FILE_BYTES:
        raise InvalidInput(f"{origin}: larger than the limit of {MAX_FILE_BYTES} bytes")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{origin}: not UTF-8 at byte {exc.start} ({content[exc.start]:#04x}); save the file as UTF-8"
        ) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader, made stricter
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(f"{origin}: not valid YAML{where}: {problem}") from None


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases, with bounded nesting and unique keys."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or event.anchor is not None:
            sign = "*" if isinstance(event, yaml.AliasEvent) else "&"
            raise yaml.composer.ComposerError(
                None, None, f"anchors and aliases are not allowed ({sign}{event.anchor})", event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:  # e.g. 2020-02-30, or an integer of 5,000 digits
            raise yaml.constructor.ConstructorError(None, None, str(exc), node.start_mark) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else []:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # refused below, by PyYAML's own check
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key].start_mark.line + 1})",
                    key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)
