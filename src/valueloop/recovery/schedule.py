"""Scheduled backups in ``valueloop server``: one every ``backup_every`` into ``backup_dir``, the
newest of each of the last ``backup_keep_daily`` days and ``backup_keep_weekly`` ISO weeks kept,
the others removed; each backup and removal audited as ``policy:backup``.

Each backup is one archive, ``valueloop-<UTC stamp>.tar.gz``, written under a hidden name and
renamed once whole, so a server killed mid-backup never leaves a file that looks like a backup
(and a later run removes the hidden folder). Folders taken by earlier releases count as backups.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from valueloop.config import Settings
from valueloop.errors import InvalidInput

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

ACTOR = "policy:backup"
PREFIX = "valueloop-"
STAMP = "%Y%m%dT%H%M%SZ"
SUFFIX = ".tar.gz"


class Retention(BaseModel):
    every_seconds: float
    daily: int
    weekly: int


class Scheduled(BaseModel):
    """What one scheduled run did: the backup taken (None when none was due) and those removed."""

    taken: str | None
    removed: list[str]


def retention(settings: Settings) -> Retention:
    """The schedule's settings, each refused by name when it breaks its rule."""
    from valueloop.durations import parse_duration

    counts = {}
    for field in ("backup_keep_daily", "backup_keep_weekly"):
        text = getattr(settings, field)
        if not text.isdigit() or (field == "backup_keep_daily" and int(text) < 1):
            raise InvalidInput(f"{field}: expected a whole number, at least "
                               f"{1 if field == 'backup_keep_daily' else 0}, got {text!r}")
        counts[field] = int(text)
    every = parse_duration(settings.backup_every, "backup_every").delta.total_seconds()
    return Retention(every_seconds=every, daily=counts["backup_keep_daily"], weekly=counts["backup_keep_weekly"])


def _taken(folder: Path) -> dict[datetime, Path]:
    """The folder's whole scheduled backups (archives, or folders of earlier releases) by the
    time each was taken."""
    found = {}
    for path in folder.glob(f"{PREFIX}*"):
        try:
            stamp = path.name.removeprefix(PREFIX).removesuffix(SUFFIX)
            found[datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)] = path
        except ValueError:
            continue  # not one of ours
    return found


def kept(moments: list[datetime], daily: int, weekly: int) -> set[datetime]:
    """The newest backup of each of the last ``daily`` days and of the last ``weekly`` ISO weeks."""
    newest_first = sorted(moments, reverse=True)
    days: dict[object, datetime] = {}
    weeks: dict[object, datetime] = {}
    for moment in newest_first:
        days.setdefault(moment.date(), moment)
        weeks.setdefault(moment.isocalendar()[:2], moment)
    return set(list(days.values())[:daily]) | set(list(weeks.values())[:weekly])


def run_scheduled(settings: Settings, now: datetime | None = None) -> Scheduled:
    """Take a backup when the newest is ``backup_every`` old, then remove what retention drops."""
    from valueloop.outcomes import audit
    from valueloop.outcomes.users import system_user
    from valueloop.recovery.backup import backup, sweep
    from valueloop.store import session

    rules, now = retention(settings), now or datetime.now(UTC)
    folder = Path(settings.backup_dir)
    folder.mkdir(parents=True, exist_ok=True)
    sweep(folder, f".{PREFIX}")  # what a server that died while writing a backup left
    taken = _taken(folder)
    name = None
    if not taken or (now - max(taken)).total_seconds() >= rules.every_seconds:
        name = f"{PREFIX}{now:{STAMP}}{SUFFIX}"
        manifest = backup(settings, folder / name)
        taken[now.replace(microsecond=0)] = folder / name
    keep = kept(list(taken), rules.daily, rules.weekly)
    removed = sorted(path.name for moment, path in taken.items() if moment not in keep)
    for gone in removed:
        if (folder / gone).is_dir():
            shutil.rmtree(folder / gone)
        else:
            (folder / gone).unlink()
    if name or removed:
        with session(settings) as s:
            system_user(s, ACTOR)
            after = {"kept": sorted(p.name for m, p in taken.items() if m in keep), "removed": removed}
            if name:
                after |= {"files": len(manifest.files), "metadata": manifest.metadata}
            audit.record(s, ACTOR, "home.backup", "home", str(folder / (name or "")), after=after)
    return Scheduled(taken=name, removed=removed)


def start_backups(settings: Settings) -> BackgroundScheduler | None:
    """In ``valueloop server``: a scheduled backup checked every minute, when ``backup_dir`` is set."""
    import logging

    from valueloop.scheduling import start_background

    if not settings.backup_dir:
        return None
    retention(settings)  # a broken setting stops the server's start, by name

    def due(_: object, configured: Settings) -> None:
        try:
            run_scheduled(configured)
        except Exception:  # noqa: BLE001 - the next minute tries again; the server keeps serving
            logging.getLogger("valueloop.recovery").exception("scheduled backup into %s failed", configured.backup_dir)

    return start_background(settings, due, "backup:scheduled")
