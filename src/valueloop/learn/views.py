"""What the Learn services return: the CLI, the HTTP API and the UI render these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from valueloop.learn.compiled import CompiledRecord
from valueloop.learn.model_tests import TestResult


class RunView(BaseModel):
    run_id: str
    usecase: str
    training_id: str
    candidate: str
    kind: str
    status: str
    error: str | None
    dataset_version: int
    dpia_version: int
    params: dict[str, Any]
    metrics: dict[str, Any]
    seed: int
    split: dict[str, Any]
    git_commit: str | None
    reproduces: str | None
    actor: str
    created_at: datetime


class KpiCheck(BaseModel):
    """A KPI target next to what the model reached (business KPIs are measured in production)."""

    name: str
    kind: str
    target: str
    value: float | None
    met: bool | None


class ModelVersionView(BaseModel):
    usecase: str
    registered_name: str
    version: int
    run_id: str
    candidate: str
    dataset_version: int
    dpia_version: int
    artifact_uri: str
    artifact_digest: str
    metrics: dict[str, Any]
    kpis: list[KpiCheck]
    tests: list[TestResult]
    tests_passed: bool
    acceptance: str
    accepted_by: str | None
    acceptance_comment: str | None
    accepted_at: datetime | None
    aliases: list[str]
    created_at: datetime
    #: the compiled library or the note why there is none; None when the use case did not ask
    compiled: CompiledRecord | None = None


class CandidateResult(BaseModel):
    """One row of the comparison."""

    candidate: str
    kind: str
    run_id: str
    status: str
    error: str | None
    primary: float | None
    metrics: dict[str, Any]
    tests: list[TestResult]
    tests_passed: bool
    trials: int
    seconds: float
    #: wall seconds per step of this candidate (learn/steps.py)
    steps: dict[str, float] = {}


class TrainingReport(BaseModel):
    usecase: str
    training_id: str
    dataset_version: int
    dpia_version: int
    primary_metric: str
    threshold: float
    split: dict[str, Any]
    features: list[str]
    #: what serving does with a raw record, plainly (learn/serving.py)
    serving: str = ""
    results: list[CandidateResult]
    best: str | None
    registered: ModelVersionView | None
    comparison_plot: str
    experiment_id: str
    #: wall seconds per step shared by the candidates (each candidate's own are in its result)
    steps: dict[str, float] = {}


class ReproduceReport(BaseModel):
    original_run: str
    new_run: str
    dataset_version: int
    matches: bool
    differences: dict[str, list[float]]
    metrics: dict[str, Any]
