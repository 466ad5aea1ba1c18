"""Scheduled backups: one every ``backup_every``, the newest of each of the last N days and M
weeks kept, each run audited as policy:backup; a broken setting is refused by name."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from valueloop.config import Settings, load_settings
from valueloop.errors import InvalidInput
from valueloop.recovery.backup import verify
from valueloop.recovery.schedule import run_scheduled
from valueloop.store import session
from valueloop.store.models import AuditEvent

#: the schedule's rules are the same on either database; pg_dump is tested in test_backup_secrets
pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def _scheduled(settings: Settings, **values: str) -> Settings:
    return load_settings(settings.as_env() | {f"VALUELOOP_{k.upper()}": v for k, v in values.items()})


def test_backups_are_taken_when_due_and_kept_by_day_and_week(settings: Settings, approved_usecase,
                                                              tmp_path: Path) -> None:
    approved_usecase(settings)
    folder = settings.home / "backups"  # in the home: never copied into the next backup
    configured = _scheduled(settings, backup_dir=str(folder), backup_every="1d", backup_keep_daily="2",
                            backup_keep_weekly="2")
    days = ["2026-11-02T03:00", "2026-11-02T09:00", "2026-11-03T03:00", "2026-11-10T03:00",
            "2026-11-11T03:00", "2026-11-12T03:00"]
    taken = [run_scheduled(configured, datetime.fromisoformat(d).replace(tzinfo=UTC)) for d in days]
    assert [t.taken for t in taken] == ["valueloop-20261102T030000Z", None, "valueloop-20261103T030000Z",
                                        "valueloop-20261110T030000Z", "valueloop-20261111T030000Z",
                                        "valueloop-20261112T030000Z"]
    # the last two days, and the newest of each of the last two weeks (week 46: the 12th; week 45: the 3rd)
    assert sorted(p.name for p in folder.iterdir()) == ["valueloop-20261103T030000Z", "valueloop-20261111T030000Z",
                                                        "valueloop-20261112T030000Z"]
    newest = verify(folder / "valueloop-20261112T030000Z")
    assert not any(name.startswith("home/backups") for name in newest.files)
    with session(settings) as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "home.backup").order_by(AuditEvent.id)))
    assert [(e.actor, e.after["removed"]) for e in events] == [
        ("policy:backup", []), ("policy:backup", []), ("policy:backup", ["valueloop-20261102T030000Z"]),
        ("policy:backup", []), ("policy:backup", ["valueloop-20261110T030000Z"])]


def test_a_broken_schedule_setting_is_refused_by_name(settings: Settings, tmp_path: Path) -> None:
    for field, value, rule in [("backup_keep_daily", "0", "at least 1"), ("backup_keep_weekly", "two", "whole number"),
                               ("backup_every", "daily", "expected a duration")]:
        broken = _scheduled(settings, backup_dir=str(tmp_path / "b"), **{field: value})
        with pytest.raises(InvalidInput, match=rf"{field}.*{rule}"):
            run_scheduled(broken)
    assert not (tmp_path / "b").exists()
