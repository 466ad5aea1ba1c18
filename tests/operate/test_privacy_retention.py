"""The DPIA's retention carried out (issue 17): the prediction-log days and labels past the
shortest retention of the personal columns they hold are deleted, exactly those, and audited
with their counts; by hand as the person, on the server's schedule as ``policy:retention``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from valueloop.config import Settings, load_settings
from valueloop.deploy.predlog import PredictionLog, _write_atomically
from valueloop.errors import InvalidInput, PermissionDenied
from valueloop.operate.retention import enforce, enforce_all
from valueloop.store import session
from valueloop.store.models import AuditEvent


@pytest.fixture
def local(tmp_path: Path) -> Settings:
    """SQLite only: where the metadata lives does not matter to what is deleted."""
    return load_settings({"VALUELOOP_HOME": str(tmp_path / "home")})


def _day(days_ago: int) -> datetime:
    return datetime.combine(datetime.now(UTC).date() - timedelta(days=days_ago), time(12), UTC)


def _predict(plog: PredictionLog, request_id: str, days_ago: int, personal: bool) -> None:
    features = {"birth_date": [1980], "postcode": ["12"]} if personal else {}
    plog.append(pa.table({"request_id": [request_id], "model_version": ["1"], "prediction": [1],
                          "ts": [_day(days_ago)], "tenure_months": [12], **features}), source="batch")


def test_retention_deletes_exactly_the_expired_days_and_labels(
        local: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]]) -> None:
    name, _ = approved_usecase(local)  # every stored personal column is kept 730d
    plog = PredictionLog(local, name)
    _predict(plog, "old", 735, personal=True)          # the whole day lies past 730 days: deleted
    _predict(plog, "edge", 729, personal=True)         # inside the retention: kept
    _predict(plog, "anonymous", 900, personal=False)   # no personal column, no retention: kept
    _predict(plog, "new", 10, personal=True)
    _write_atomically(pa.table({
        "request_id": ["old", "edge", "new"], "label": [1, 0, 1],
        "ts": pa.array([_day(733), _day(728), _day(9)], pa.timestamp("us", tz="UTC")),
        "labeled_by": ["eve"] * 3}), plog.root.child("labels"))
    days = {d.name for d in plog.days()}

    with pytest.raises(PermissionDenied, match="dana may not enforce retention.*requires role operations or privacy_officer"):
        enforce(local, "dana", name)
    with pytest.raises(InvalidInput, match="models_too: only the privacy officer"):
        enforce(local, "oscar", name, models_too=True)
    report = enforce(local, "oscar", name)

    expired = f"{_day(735):%Y-%m-%d}"
    assert report.partitions_deleted == [expired] and report.predictions_deleted == 1
    assert report.labels_deleted == 1 and report.retention["predictions"] == "730d"
    assert {d.name for d in plog.days()} == days - {f"date={expired}"}
    assert sorted(plog.read()["request_id"].to_pylist()) == ["anonymous", "edge", "new"]
    labels = pa.concat_tables(pq.read_table(f)
                              for f in Path(plog.root.path, "labels").glob("*.parquet"))
    assert sorted(labels["request_id"].to_pylist()) == ["edge", "new"]

    assert [r.predictions_deleted for r in enforce_all(local)] == [0]  # the server's hourly run
    with session(local) as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "privacy.retention")
                           .order_by(AuditEvent.id)).all()
    assert [(e.actor, e.after["predictions_deleted"], e.after["labels_deleted"]) for e in events] == [
        ("oscar", 1, 1), ("policy:retention", 0, 0)]
    assert events[0].after["partitions_deleted"] == [expired]
