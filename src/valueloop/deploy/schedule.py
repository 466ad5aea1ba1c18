"""Scheduled batch scoring: the ``batch:`` section of each use case file, run on its cron by the
scheduler of ``valueloop server``. Use cases are re-read every minute, so a changed file takes
effect without a restart; a failed run is logged (and recorded as a failed batch job) and never
stops the others. Each run acts as the entry's ``run_as`` user, by default the use case's first
operations member, and needs :attr:`Action.deploy` like ``valueloop batch``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from valueloop.config import Settings
from valueloop.errors import InvalidInput, ValueloopError
from valueloop.outcomes.lifecycle import State
from valueloop.outcomes.spec import BatchSchedule
from valueloop.outcomes.duties import default_run_as
from valueloop.outcomes.usecases import members_by_role, spec_of
from valueloop.store import session
from valueloop.store.models import UseCase

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    from valueloop.deploy.batch import BatchJobView

log = logging.getLogger("valueloop.batch.schedule")
_SYNC_ID = "batch:sync"


def trigger(cron: str) -> CronTrigger:
    """5 fields as crontab; 6 fields put seconds first."""
    from apscheduler.triggers.cron import CronTrigger

    fields = cron.split()
    if len(fields) == 5:
        return CronTrigger.from_crontab(cron, timezone=UTC)
    second, minute, hour, day, month, weekday = fields
    return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month,
                       day_of_week=weekday, timezone=UTC)


def scheduled(settings: Settings) -> dict[str, tuple[str, BatchSchedule, str]]:
    """Job id -> (use case, entry, acting user) for every entry of every use case in service."""
    found = {}
    with session(settings) as s:
        for usecase in s.scalars(select(UseCase).order_by(UseCase.name)):
            spec = spec_of(usecase)
            if usecase.state == State.retired or not spec.batch:
                continue
            for entry in spec.batch:
                who = entry.run_as or default_run_as(spec, members_by_role(usecase))
                found[f"batch:{usecase.name}:{entry.name}"] = (usecase.name, entry, who)
    return found


def _path(settings: Settings, usecase: str, text: str) -> str:
    """File paths (relative, as the file's schema demands) resolve under ``<home>/batch/<use case>/``
    and must stay there through any symlink; datasets and SQL pass through."""
    from valueloop.refs import names_a_version

    prefix = "delta:" if text.startswith("delta:") else ""
    bare = text.removeprefix(prefix)
    if text.startswith("sql:") or names_a_version(text):
        return text
    root = (settings.home / "batch" / usecase).resolve()
    path = (root / bare).resolve()
    if not path.is_relative_to(root):
        raise InvalidInput(f"batch: {text!r} leads outside {root}, where scheduled jobs read and write")
    return prefix + str(path)


def run_scheduled(settings: Settings, actor: str, usecase: str, entry: BatchSchedule) -> BatchJobView | None:
    """One scheduled run; a failure is logged and returns None."""
    from valueloop.deploy.batch import BatchOptions, run_batch

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    try:
        output = _path(settings, usecase, entry.output.replace("{ts}", stamp))
        Path(output.removeprefix("delta:")).parent.mkdir(parents=True, exist_ok=True)
        job = run_batch(settings, actor, usecase, _path(settings, usecase, entry.input), output,
                        BatchOptions(model=entry.model, overwrite=entry.overwrite))
    except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the scheduler
        if not isinstance(exc, ValueloopError):
            log.exception("scheduled batch %s of %s failed", entry.name, usecase)
        else:
            log.error("scheduled batch %s of %s failed: %s", entry.name, usecase, exc)
        return None
    log.info("scheduled batch %s of %s: %d rows into %s", entry.name, usecase, job.row_count, job.output)
    return job


def _sync(scheduler: BackgroundScheduler, settings: Settings) -> None:
    """Make the scheduler's batch jobs those the use case files declare."""
    wanted = scheduled(settings)
    for job in scheduler.get_jobs():
        if job.id.startswith("batch:") and job.id != _SYNC_ID and job.id not in wanted:
            job.remove()
    for job_id, (usecase, entry, actor) in wanted.items():
        current = scheduler.get_job(job_id)
        if current is None or current.args[1:] != (actor, usecase, entry):
            scheduler.add_job(run_scheduled, trigger(entry.cron), args=[settings, actor, usecase, entry],
                              id=job_id, replace_existing=True, max_instances=1, coalesce=True)


def start_scheduler(settings: Settings) -> BackgroundScheduler:
    """Start a background scheduler running every declared batch job; the caller shuts it down."""
    from valueloop.scheduling import start_background

    return start_background(settings, _sync, _SYNC_ID)
