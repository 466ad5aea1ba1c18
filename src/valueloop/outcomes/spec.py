"""The use case file, ``valueloop.yaml``: its schema and its loader.

Every model here forbids unknown fields, so a misspelt key is reported instead of ignored.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from valueloop.errors import InvalidInput
from valueloop.outcomes.roles import Role
from valueloop.validation import describe_errors

NAME_RULE = r"^[a-z][a-z0-9_-]{1,63}$"
Name = Annotated[str, Field(pattern=NAME_RULE)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class PersonalColumn(ColumnTreatment):
    category: str = Field(description="e.g. identifier, contact, demographic, location, financial")
    purpose: str
    legal_basis: Literal[
        "consent", "contract", "legal_obligation", "vital_interest", "public_task",
        "legitimate_interest",
    ]
    retention: str


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

    @field_validator("columns")
    @classmethod
    def _unique_columns(cls, columns: list[PersonalColumn]) -> list[PersonalColumn]:
        seen = [c.column for c in columns]
        dupes = sorted({c for c in seen if seen.count(c) > 1})
        if dupes:
            raise ValueError(f"column(s) declared twice: {', '.join(dupes)}")
        return columns


_METRICS = {
    "classification": {"roc_auc", "accuracy", "f1", "precision", "recall", "log_loss", "pr_auc"},
    "regression": {"rmse", "mae", "r2", "mape"},
}


class ModelObjective(Strict):
    task: Literal["classification", "regression"]
    target: str
    primary_metric: str
    threshold: float = Field(description="the primary metric a model must reach to be accepted")

    @model_validator(mode="after")
    def _metric_fits_task(self) -> ModelObjective:
        if self.primary_metric not in _METRICS[self.task]:
            raise ValueError(
                f"primary_metric '{self.primary_metric}' does not fit task {self.task}; "
                f"choose one of {', '.join(sorted(_METRICS[self.task]))}"
            )
        return self


class Members(Strict):
    """User names per role; the owner and sponsor are given at the top of the file."""

    analyst: list[str] = Field(default_factory=list)
    expert: list[str] = Field(default_factory=list)
    data_engineer: list[str] = Field(default_factory=list)
    data_scientist: list[str] = Field(default_factory=list)
    developer: list[str] = Field(default_factory=list)
    privacy_officer: list[str] = Field(default_factory=list)
    operations: list[str] = Field(default_factory=list)


class UseCaseSpec(Strict):
    name: Name
    title: str
    business_goal: str
    owner: str
    sponsor: str | None = None
    members: Members = Field(default_factory=Members)
    kpis: list[KPI] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    privacy: Privacy
    model: ModelObjective

    @model_validator(mode="after")
    def _cross_checks(self) -> UseCaseSpec:
        names = [k.name for k in self.kpis]
        if len(set(names)) != len(names):
            raise ValueError("kpis: each KPI needs a unique name")
        sources = [s.name for s in self.sources]
        if len(set(sources)) != len(sources):
            raise ValueError("sources: each source needs a unique name")
        if not self.members.privacy_officer:
            raise ValueError("members.privacy_officer: at least one privacy officer must decide the DPIA")
        return self

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


def load_spec(path: str | Path) -> UseCaseSpec:
    """Read and validate a use case file, listing every problem with its path."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InvalidInput(f"use case file {path}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"use case file {path}: cannot be read ({exc.strerror})") from None
    return parse_spec(parse_yaml(text, str(path)), str(path))


def parse_yaml(text: str, origin: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(f"{origin}: not valid YAML{where}: {problem}") from None


