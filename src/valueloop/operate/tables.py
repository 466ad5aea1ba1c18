"""The Operate phase's tables: monitor results, alerts, business KPI values, retrain requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from valueloop.store.models import USECASE_NAME, Base, utcnow


class MonitorResult(Base):
    """One window of the prediction log as last computed; recomputed on each run, so late labels
    update the window they belong to. Count windows of a batch may share their times, hence no
    unique key on them."""

    __tablename__ = "monitor_results"
    __table_args__ = (Index("ix_monitor_results_window", "usecase", "window_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    usecase: Mapped[str] = mapped_column(ForeignKey(USECASE_NAME))
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    rows: Mapped[int] = mapped_column(Integer)
    labeled: Mapped[int] = mapped_column(Integer, default=0)
    model_versions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    reference_version: Mapped[int | None] = mapped_column(Integer)
    drift: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dataset_drift: Mapped[bool] = mapped_column(default=False)
    drift_share: Mapped[float] = mapped_column(Float, default=0.0)
    prediction_drift: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    missing: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    unseen: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    performance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    estimated: Mapped[bool] = mapped_column(default=False)
    health: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Alert(Base):
    """A rule that fired; repeated firings within the rule's dedup window count on the same row."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    usecase: Mapped[str] = mapped_column(ForeignKey(USECASE_NAME), index=True)
    rule: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    dedup_key: Mapped[str] = mapped_column(String(255), index=True)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    deliveries: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None]


class KpiValue(Base):
    """A business KPI value reported by the owner's systems."""

    __tablename__ = "kpi_values"

    id: Mapped[int] = mapped_column(primary_key=True)
    usecase: Mapped[str] = mapped_column(ForeignKey(USECASE_NAME), index=True)
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    cycle: Mapped[int | None] = mapped_column(Integer)
    reported_by: Mapped[str] = mapped_column(String(64))


class RetrainRequest(Base):
    """One turn of the retraining loop, step by step, with the comparison and the decision."""

    __tablename__ = "retrain_requests"
    # two processes that both pass the "is one running?" check cannot both insert
    __table_args__ = (Index("ix_retrain_requests_one_running", "usecase", unique=True,
                            sqlite_where=text("status = 'running'"), postgresql_where=text("status = 'running'")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    usecase: Mapped[str] = mapped_column(ForeignKey(USECASE_NAME), index=True)
    trigger: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="running")
    cycle: Mapped[int | None] = mapped_column(Integer)
    steps: Mapped[list[Any]] = mapped_column(JSON, default=list)
    dataset_version: Mapped[int | None] = mapped_column(Integer)
    champion_version: Mapped[str | None] = mapped_column(String(32))
    challenger_version: Mapped[str | None] = mapped_column(String(32))
    comparison: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    decision: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
