"""The one way a phase runs its schedules in ``valueloop server``: a background scheduler whose
sync job re-reads the use case files every minute and adds, changes or removes the phase's jobs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from valueloop.config import Settings

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

Sync = Callable[["BackgroundScheduler", Settings], None]


def start_background(settings: Settings, sync: Sync, sync_id: str, minutes: int = 1) -> BackgroundScheduler:
    """Start a scheduler that runs ``sync`` now and every ``minutes``; the caller shuts it down."""
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(sync, "interval", minutes=minutes, args=[scheduler, settings], id=sync_id,
                      next_run_time=datetime.now(UTC), max_instances=1, coalesce=True)
    scheduler.start()
    return scheduler
