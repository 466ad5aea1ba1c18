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
    assert [t.taken for t in taken] == [f"valueloop-{stamp}.tar.gz" if stamp else None for stamp in (
        "20261102T030000Z", None, "20261103T030000Z", "20261110T030000Z", "20261111T030000Z", "20261112T030000Z")]
    # the last two days, and the newest of each of the last two weeks (week 46: the 12th; week 45: the 3rd)
    assert sorted(p.name for p in folder.iterdir()) == [
        "valueloop-20261103T030000Z.tar.gz", "valueloop-20261111T030000Z.tar.gz", "valueloop-20261112T030000Z.tar.gz"]
    newest = verify(folder / "valueloop-20261112T030000Z.tar.gz")
    assert not any(name.startswith("home/backups") for name in newest.files)
    with session(settings) as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "home.backup").order_by(AuditEvent.id)))
    assert [(e.actor, e.after["removed"]) for e in events] == [
        ("policy:backup", []), ("policy:backup", []), ("policy:backup", ["valueloop-20261102T030000Z.tar.gz"]),
        ("policy:backup", []), ("policy:backup", ["valueloop-20261110T030000Z.tar.gz"])]


def test_a_killed_backup_leaves_nothing_that_looks_whole_and_its_hidden_folder_goes(
        settings: Settings, approved_usecase, run_cli) -> None:
    """A backup killed after writing its archive, before the rename: no file at its name; the
    hidden folder it left is removed once an hour old, by the schedule's next run and by the next
    manual backup to that name."""
    import os
    import signal

    approved_usecase(settings)
    folder = settings.home / "backups"
    configured = _scheduled(settings, backup_dir=str(folder))
    for out in (folder / "manual.tar.gz", folder / "valueloop-20261101T030000Z.tar.gz"):
        killed = run_cli(configured, "backup", str(out), as_user="admin",
                         env={"VALUELOOP_TEST_CRASH_AT": "backup-archive-written"})
        assert killed.returncode == -signal.SIGKILL, killed.stderr
    hidden = sorted(p for p in folder.iterdir())
    assert [p.name.split(".tar.gz.")[0] for p in hidden] == [".manual", ".valueloop-20261101T030000Z"]
    assert run_scheduled(configured).taken is not None
    assert sorted(folder.iterdir())[:2] == hidden, "a backup written in the last hour may still be running"
    for path in hidden:
        os.utime(path, (0, 0))  # as if left an hour and more ago
    run_scheduled(configured)
    assert hidden[0].exists() and not hidden[1].exists(), "the schedule sweeps its own names only"
    assert run_cli(configured, "backup", str(folder / "manual.tar.gz"), as_user="admin").returncode == 0
    assert not hidden[0].exists() and verify(folder / "manual.tar.gz").files


def test_a_broken_schedule_setting_is_refused_by_name(settings: Settings, tmp_path: Path) -> None:
    for field, value, rule in [("backup_keep_daily", "0", "at least 1"), ("backup_keep_weekly", "two", "whole number"),
                               ("backup_every", "daily", "expected a duration")]:
        broken = _scheduled(settings, backup_dir=str(tmp_path / "b"), **{field: value})
        with pytest.raises(InvalidInput, match=rf"{field}.*{rule}"):
            run_scheduled(broken)
    assert not (tmp_path / "b").exists()
