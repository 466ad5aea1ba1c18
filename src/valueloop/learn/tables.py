"""The Learn phase's tables: training runs and model versions.

They hold the dataset version as a number (no foreign key into the Data phase's tables), so
each phase migrates on its own branch; MLflow keeps the artifacts, these rows keep the lineage.
The use case is named, and must exist (a foreign key to its name).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from valueloop.store.models import USECASE_NAME, Base, utcnow


class TrainingRun(Base):
    """One candidate trained once: an MLflow run, or a failure with its error."""

    __tablename__ = "training_runs"
    __table_args__ = (Index("ix_training_runs_usecase", "usecase"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), unique=True)
    usecase: Mapped[str] = mapped_column(ForeignKey(USECASE_NAME))
    training_id: Mapped[str] = mapped_column(String(32), index=True)
    dataset_version: Mapped[int]
    dpia_version: Mapped[int]
    candidate: Mapped[dict[str, Any]]
    params: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    features: Mapped[list[Any]]
    seed: Mapped[int]
    split: Mapped[dict[str, Any]]
    #: the Target's record; null for a run that failed before it, or trained before targets were kept
    target: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    git_commit: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    reproduces: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """A registered MLflow model version and what valueloop knows of it: lineage, tests, acceptance."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("usecase", "version"),
        Index("ix_model_versions_usecase", "usecase"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    usecase: Mapped[str] = mapped_column(ForeignKey(USECASE_NAME))
    registered_name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int]
    run_id: Mapped[str] = mapped_column(String(64))
    dataset_version: Mapped[int]
    dpia_version: Mapped[int]
    artifact_uri: Mapped[str] = mapped_column(Text)
    artifact_digest: Mapped[str] = mapped_column(String(64))
    test_report: Mapped[dict[str, Any]]
    tests_passed: Mapped[bool]
    acceptance: Mapped[str] = mapped_column(String(16), default="pending")
    accepted_by: Mapped[str | None] = mapped_column(String(64))
    acceptance_comment: Mapped[str | None] = mapped_column(Text)
    accepted_at: Mapped[datetime | None]
    aliases: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: the model card (learn/modelcard.py): its digest as last generated, the data scientist's
    #: limitations, and the digest the owner signed (a changed card no longer matches it)
    card_digest: Mapped[str | None] = mapped_column(String(64))
    card_limitations: Mapped[str | None] = mapped_column(Text)
    card_signed_digest: Mapped[str | None] = mapped_column(String(64))
    card_signed_by: Mapped[str | None] = mapped_column(String(64))
    card_signed_at: Mapped[datetime | None]
    #: ``model: compile: true``: the trees' compiled library (artifact URI, digest, compiler) or
    #: the note why the model has none (learn/compiled.py); null when not asked
    compiled: Mapped[dict[str, Any] | None] = mapped_column(JSON)
