"""The DPIA's retention carried out: what is kept past the shortest retention of the personal
columns it holds is deleted, and each deletion is audited with its counts.

- a prediction-log partition (one day) goes once the whole day lies past the shortest retention of
  the personal columns its files hold (the log holds treated features: a generalized birth year,
  a region prefix); a partition without personal columns is no personal data and stays;
- a label goes once older than the shortest retention of the log it labels;
- Delta files of dataset versions that were superseded longer ago than the dataset's shortest
  retention are vacuumed, except the versions a registered model was trained on (their lineage
  and retraining need them) unless the privacy officer decides otherwise (``models_too``); the
  versions whose files are gone are marked removed, their rows keeping the lineage.

``valueloop server`` runs it hourly for every use case as ``policy:retention``; ``valueloop
privacy enforce-retention`` runs it by hand as the person.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.config import Settings
from valueloop.data import delta
from valueloop.data.tables import DatasetVersion
from valueloop.deploy.predlog import PredictionLog, _parts, _write_atomically, settled
from valueloop.durations import Duration
from valueloop.errors import InvalidInput, ValueloopError
from valueloop.learn.tables import ModelVersion
from valueloop.outcomes import audit
from valueloop.outcomes.privacy import require_privacy_approval
from valueloop.outcomes.roles import Action, allows, require
from valueloop.outcomes.spec import Treatment
from valueloop.outcomes.usecases import get_usecase
from valueloop.outcomes.users import get_user
from valueloop.store import session as open_session
from valueloop.storage import Location
from valueloop.store.models import UseCase, utcnow

if TYPE_CHECKING:
    import pyarrow as pa
    from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger("valueloop.retention")

#: who enforces retention on the server's schedule: the DPIA's standing authorization, not a person
POLICY = "policy:retention"


class RetentionReport(BaseModel):
    usecase: str
    #: the shortest retention per store, as the DPIA declares it (None: the store holds no personal column)
    retention: dict[str, str | None]
    partitions_deleted: list[str]
    predictions_deleted: int
    labels_deleted: int
    dataset_files_deleted: int
    dataset_versions_removed: list[int]
    dataset_versions_kept_for_models: list[int]


def retentions(session: Session, usecase: UseCase) -> dict[str, Duration]:
    """The retention of each stored personal column of the approved DPIA (dropped ones are not
    stored; an officer's condition may change a column's treatment, never its retention)."""
    assessment = require_privacy_approval(session, usecase)
    treatments = assessment.treatments
    return {c.column: c.retention for c in assessment.content.columns
            if isinstance(c.retention, Duration) and treatments[c.column].treatment is not Treatment.drop}


def _shortest(declared: dict[str, Duration], columns: set[str]) -> Duration | None:
    held = [declared[c] for c in columns if c in declared]
    return min(held, key=lambda d: d.delta) if held else None


def _columns(files: list[Location]) -> set[str]:
    import pyarrow.parquet as pq

    return {name for f in files for name in pq.read_schema(f.path, filesystem=f.filesystem).names}


def _predictions(plog: PredictionLog, declared: dict[str, Duration], now: datetime,
                 report: RetentionReport) -> Duration | None:
    """Delete the expired day partitions; return the log's shortest retention over all of them."""
    import pyarrow.parquet as pq

    overall: list[Duration] = []
    for day_dir in plog.days():
        day = date.fromisoformat(day_dir.name.removeprefix("date="))
        files = _parts(day_dir)
        shortest = _shortest(declared, _columns(files))
        if shortest is None:
            continue
        overall.append(shortest)
        day_end = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
        if day_end <= now - shortest.delta:
            report.predictions_deleted += sum(pq.read_metadata(f.path, filesystem=f.filesystem).num_rows
                                              for f in files)
            day_dir.filesystem.delete_dir(day_dir.path)
            report.partitions_deleted.append(day.isoformat())
    return min(overall, key=lambda d: d.delta) if overall else None


def rewrite_without(directory: Location, keep: Callable[[pa.Table], Any]) -> int:
    """Rewrite each Parquet file of ``directory`` without the rows the mask ``keep(table)`` leaves
    out, as a new immutable file (the old one deleted once the new one is in place); a file left
    without rows is deleted. Returns the rows removed."""
    import pyarrow.parquet as pq

    removed = 0
    for f in settled(directory):
        table = pq.read_table(f.path, filesystem=f.filesystem)
        kept = table.filter(keep(table))
        if kept.num_rows == table.num_rows:
            continue
        removed += table.num_rows - kept.num_rows
        if kept.num_rows:
            _write_atomically(kept, directory)
        f.filesystem.delete_file(f.path)
    return removed


def _labels(plog: PredictionLog, shortest: Duration | None, now: datetime, report: RetentionReport) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    if shortest is None:
        return
    cutoff = pa.scalar(now - shortest.delta, pa.timestamp("us", tz="UTC"))
    report.labels_deleted = rewrite_without(
        plog.root.child("labels"), lambda t: pc.greater_equal(t["ts"].cast(cutoff.type), cutoff))


def _datasets(session: Session, settings: Settings, usecase: UseCase, declared: dict[str, Duration],
              actor: str, models_too: bool, report: RetentionReport) -> Duration | None:
    """Vacuum the dataset's Delta files superseded longer ago than its shortest retention."""
    rows = list(session.scalars(select(DatasetVersion).where(DatasetVersion.usecase_id == usecase.id)
                                .order_by(DatasetVersion.version)))
    table = delta.table_path(settings, usecase.name)
    current = delta.open_table(table)
    if not rows or current is None:
        return None
    shortest = _shortest(declared, {c["name"] for r in rows for c in r.schema})
    if shortest is None:
        return None
    trained_on = sorted(set(session.scalars(select(ModelVersion.dataset_version)
                                             .where(ModelVersion.usecase == usecase.name))))
    readable = [r for r in rows if not r.removed]
    keep = [] if models_too else [v for v in trained_on if v in {r.version for r in readable}]
    report.dataset_versions_kept_for_models = keep
    hours = int(shortest.delta.total_seconds() // 3600)  # Delta counts whole hours: never longer than declared
    deleted = current.vacuum(retention_hours=hours, dry_run=False, enforce_retention_duration=False,
                                            keep_versions=keep or None)
    report.dataset_files_deleted = len(deleted)
    if deleted:
        mark_removed(actor, readable, table, "retention", f"superseded longer than the retention of {shortest}")
        report.dataset_versions_removed = [r.version for r in readable if r.removed]
    return shortest


def mark_removed(actor: str, rows: list[DatasetVersion], table: Location, reason: str, detail: str) -> None:
    """Mark each readable version one of whose files is gone: its row keeps the lineage."""
    for row in rows:
        if not row.removed and any(not f.exists() for f in delta.files_at(table, row.version)):
            row.removed = {"reason": reason, "detail": detail, "at": utcnow().isoformat(), "by": actor}


def enforce(settings: Settings, actor: str | None, name: str, *, models_too: bool = False,
            now: datetime | None = None) -> RetentionReport:
    """Delete what the use case keeps past its DPIA's retention, audited with the counts;
    ``models_too`` (the privacy officer's decision) also vacuums versions models were trained on."""
    now = now or datetime.now(UTC)
    with open_session(settings) as s:
        usecase = get_usecase(s, name)
        acting = get_user(s, actor)
        require(s, acting, Action.enforce_retention, usecase)
        if models_too and not allows(s, acting, Action.erase, usecase):
            raise InvalidInput(f"models_too: only the privacy officer decides to remove the data models of "
                               f"'{name}' were trained on; {acting.name} is not")
        declared = retentions(s, usecase)
        report = RetentionReport(usecase=name, retention={}, partitions_deleted=[], predictions_deleted=0,
                                 labels_deleted=0, dataset_files_deleted=0, dataset_versions_removed=[],
                                 dataset_versions_kept_for_models=[])
        plog = PredictionLog(settings, name)
        log_shortest = _predictions(plog, declared, now, report)
        _labels(plog, log_shortest, now, report)
        data_shortest = _datasets(s, settings, usecase, declared, acting.name, models_too, report)
        report.retention = {"predictions": log_shortest, "labels": log_shortest, "datasets": data_shortest}
        audit.record(s, acting.name, "privacy.retention", "usecase", name, usecase=name,
                     after=report.model_dump(exclude={"usecase"}) | {"models_too": models_too})
        return report


def enforce_all(settings: Settings) -> list[RetentionReport]:
    """Every use case with an approved DPIA, as the retention policy; one failure stops no other."""
    from valueloop.outcomes.users import system_user

    with open_session(settings) as s:
        names = list(s.scalars(select(UseCase.name).order_by(UseCase.name)))
        system_user(s, POLICY)
    reports = []
    for name in names:
        try:
            reports.append(enforce(settings, POLICY, name))
        except ValueloopError as exc:  # no approved DPIA yet: nothing was recorded under it
            log.info("retention of %s: %s", name, exc)
        except Exception:  # noqa: BLE001 - one use case's failure must not stop the others
            log.exception("retention of %s failed", name)
    return reports


def start_retention(settings: Settings) -> BackgroundScheduler:
    """Enforce retention now and every hour in ``valueloop server``; the caller shuts it down."""
    from valueloop.scheduling import start_background

    return start_background(settings, lambda _, s: enforce_all(s), "privacy:retention", minutes=60)
