"""The Data phase's table: one row per committed Delta table version, with its lineage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from valueloop.store.models import Base, UseCase, utcnow


class DatasetVersion(Base):
    """A Delta table version and where it came from: sources, transform, DPIA, checks, profile."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("usecase_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    usecase_id: Mapped[int] = mapped_column(ForeignKey("usecases.id"), index=True)
    version: Mapped[int]
    uri: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(16))
    row_count: Mapped[int] = mapped_column(BigInteger)
    schema: Mapped[list[Any]]
    source_fingerprints: Mapped[dict[str, Any]]
    transform_hash: Mapped[str] = mapped_column(String(64))
    dpia_version: Mapped[int]
    treatments: Mapped[dict[str, Any]]
    #: the sources' raw schemas and the row-level transform (data/serving.py); null before migration 0014
    serving: Mapped[dict[str, Any] | None]
    quality: Mapped[dict[str, Any]]
    #: why its files are gone, when and by whom (operate/retention.py, operate/erasure.py): the
    #: row keeps the lineage, the rows cannot be read back; null while the version is readable
    removed: Mapped[dict[str, Any] | None]
    profile: Mapped[dict[str, Any]]
    project_dir: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    usecase: Mapped[UseCase] = relationship()
