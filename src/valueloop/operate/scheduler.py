"""The in-process scheduler of ``valueloop server``: for every use case with an ``operate:``
section, its monitor every ``operate.every`` (followed by the retraining policy when the monitor
calls for it), the compaction of its prediction log every day (:data:`COMPACTION`) and, with the
schedule trigger, retraining on its cron. Use cases are re-read every
minute, so a changed file takes effect without a restart. Scheduled runs act as the use case's
operations member; one use case's failure is logged and never stops the others."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel
from sqlalchemy import select

from valueloop.config import Settings
from valueloop.errors import ValueloopError
from valueloop.outcomes.lifecycle import State
from valueloop.outcomes.usecases import spec_of
from valueloop.store import session as open_session
from valueloop.store.models import UseCase

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger("valueloop.scheduler")


class Outcome(BaseModel):
    usecase: str
    ok: bool
    detail: str


def monitored(settings: Settings) -> dict[str, tuple[int, str | None]]:
    """Use cases with an operate section and not retired: (monitor interval in seconds, cron)."""
    found = {}
    with open_session(settings) as s:
        for usecase in s.scalars(select(UseCase).order_by(UseCase.name)):
            operate = spec_of(usecase).operate
            if operate is None or usecase.state == State.retired:
                continue
            seconds = int(operate.every.delta.total_seconds())
            cron = operate.retrain.schedule if "schedule" in operate.retrain.triggers else None
            found[usecase.name] = (seconds, cron)
    return found


#: who runs a use case's monitor on the scheduler: the operate policy of its file, not a person
SCHEDULER = "policy:schedule"


def _operator(settings: Settings, name: str) -> str:
    from valueloop.outcomes.users import system_user

    with open_session(settings) as s:
        return system_user(s, SCHEDULER).name


def monitor_usecase(settings: Settings, name: str) -> Outcome:
    """One scheduled monitor run, and the retraining it triggers; failures become the outcome."""
    from valueloop.operate.monitor import run_monitor
    from valueloop.operate.retrain import retrain

    try:
        who = _operator(settings, name)
        report = run_monitor(settings, who, name)
        detail = report.message or f"{len(report.windows)} window(s), {len(report.alerts)} new alert(s)"
        if report.problems:
            detail += f"; {len(report.problems)} left out: {report.problems[0]}"
        trigger = report.retrain or ("erasure" if _erasure_triggers(settings, name) else None)
        if trigger:
            result = retrain(settings, who, name, trigger)
            detail += f"; retraining #{result.id} ({trigger}): {result.status}"
        return Outcome(usecase=name, ok=True, detail=detail)
    except Exception as exc:  # noqa: BLE001 - one use case's failure must not stop the others
        if not isinstance(exc, ValueloopError):
            log.exception("monitor of %s failed", name)
        return Outcome(usecase=name, ok=False, detail=f"{type(exc).__name__}: {exc}")


def _erasure_triggers(settings: Settings, name: str) -> bool:
    from valueloop.operate.erasure import retraining_due
    from valueloop.outcomes.usecases import get_usecase

    with open_session(settings) as s:
        operate = spec_of(get_usecase(s, name)).operate
    return operate is not None and "erasure" in operate.retrain.triggers and retraining_due(settings, name)


def retrain_on_schedule(settings: Settings, name: str) -> Outcome:
    from valueloop.operate.retrain import retrain

    try:
        result = retrain(settings, _operator(settings, name), name, "schedule")
        return Outcome(usecase=name, ok=result.status != "failed", detail=f"{result.status}: {result.decision}")
    except Exception as exc:  # noqa: BLE001 - as above
        log.exception("scheduled retraining of %s failed", name)
        return Outcome(usecase=name, ok=False, detail=f"{type(exc).__name__}: {exc}")


#: when the prediction log's past days are compacted (UTC), after the day's last files are in
COMPACTION = "20 0 * * *"


def compact_on_schedule(settings: Settings, name: str) -> Outcome:
    from valueloop.operate.compaction import compact_log

    try:
        done = compact_log(settings, _operator(settings, name), name)
        return Outcome(usecase=name, ok=True, detail=f"{done.files} file(s) of {done.days} day(s) compacted")
    except Exception as exc:  # noqa: BLE001 - as above
        log.exception("compaction of %s's prediction log failed", name)
        return Outcome(usecase=name, ok=False, detail=f"{type(exc).__name__}: {exc}")


def run_all(settings: Settings) -> list[Outcome]:
    """Every monitored use case once, in turn (the scheduler runs them on their own intervals)."""
    outcomes = [monitor_usecase(settings, name) for name in monitored(settings)]
    for outcome in outcomes:
        (log.info if outcome.ok else log.error)("monitor %s: %s", outcome.usecase, outcome.detail)
    return outcomes


def _sync(scheduler: BackgroundScheduler, settings: Settings) -> None:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    wanted = monitored(settings)
    for job in scheduler.get_jobs():
        kind, _, name = job.id.partition(":")
        if kind in ("monitor", "retrain", "compact") and (name not in wanted or (kind == "retrain" and wanted[name][1] is None)):
            job.remove()
    for name, (seconds, cron) in wanted.items():
        job = scheduler.get_job(f"monitor:{name}")
        if job is None or job.trigger.interval.total_seconds() != seconds:
            scheduler.add_job(monitor_usecase, IntervalTrigger(seconds=seconds, timezone=UTC), args=[settings, name],
                              id=f"monitor:{name}", replace_existing=True, max_instances=1, coalesce=True,
                              next_run_time=datetime.now(UTC))
        if scheduler.get_job(f"compact:{name}") is None:
            scheduler.add_job(compact_on_schedule, CronTrigger.from_crontab(COMPACTION, timezone=UTC),
                              args=[settings, name], id=f"compact:{name}", max_instances=1, coalesce=True)
        if cron is not None:
            job = scheduler.get_job(f"retrain:{name}")
            if job is None or str(job.trigger) != str(CronTrigger.from_crontab(cron, timezone=UTC)):
                scheduler.add_job(retrain_on_schedule, CronTrigger.from_crontab(cron, timezone=UTC),
                                  args=[settings, name], id=f"retrain:{name}", replace_existing=True,
                                  max_instances=1, coalesce=True)


def start_monitoring(settings: Settings) -> BackgroundScheduler:
    """Start the scheduler in the background; the caller shuts it down (``scheduler.shutdown()``)."""
    from valueloop.scheduling import start_background

    return start_background(settings, _sync, "operate:sync")
