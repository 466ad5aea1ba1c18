"""The lineage of batch scoring: one row per job, from its input fingerprint to its output."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from valueloop.store.models import USECASE_NAME, Base, utcnow


class BatchJob(Base):
    """A batch scoring job; ``staging`` holds its committed parts until the output is published."""

    __tablename__ = "batch_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    usecase: Mapped[str] = mapped_column(ForeignKey(USECASE_NAME), index=True)
    model_version: Mapped[str] = mapped_column(String(64))
    model_ref: Mapped[str] = mapped_column(String(64))
    input: Mapped[str] = mapped_column(Text)
    input_fingerprint: Mapped[str] = mapped_column(String(64))
    output: Mapped[str] = mapped_column(Text)
    output_format: Mapped[str] = mapped_column(String(16))
    staging: Mapped[str] = mapped_column(Text)
    executor: Mapped[str] = mapped_column(String(255))
    part_rows: Mapped[int] = mapped_column(Integer)
    parts_total: Mapped[int] = mapped_column(Integer)
    parts_done: Mapped[int] = mapped_column(Integer, default=0)
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
