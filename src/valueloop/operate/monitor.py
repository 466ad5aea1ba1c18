"""The monitor of a use case: its prediction log cut into windows, each assessed against the
training data's reference; results stored per window (recomputed on every run, so labels that
arrive late update the windows they belong to), alert rules evaluated on the newest window, and
the retraining trigger it calls for, if any."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from valueloop.config import Settings
from valueloop.operate import alerts as alerting
from valueloop.operate import kpis
from valueloop.operate.health import Health, scrape
from valueloop.operate.reference import reference_for
from valueloop.operate.tables import MonitorResult
from valueloop.operate.windows import WindowReport, assess, cut
from valueloop.outcomes import audit
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.spec import Operate, UseCaseSpec
from valueloop.outcomes.usecases import get_usecase, spec_of, viewed
from valueloop.outcomes.users import get_user
from valueloop.store import session as open_session
from valueloop.store.models import utcnow


class MonitorReport(BaseModel):
    usecase: str
    reference_version: int | None
    window: str
    since: datetime | None
    until: datetime | None
    windows: list[WindowReport]
    health: Health
    kpis: dict[str, float]
    alerts: list[alerting.AlertView]
    #: why the retraining policy should run now (drift, performance), or None
    retrain: str | None
    message: str | None
    #: damaged log files and bad labels that were left out (the run went on without them)
    problems: list[str] = []
    computed_at: datetime


def operate_of(spec: UseCaseSpec) -> Operate:
    """The declared operate section, or the defaults (daily windows, Evidently-like drift, no alerts)."""
    return spec.operate or Operate()


def _describe(operate: Operate) -> str:
    return f"every {operate.window.every}" if operate.window.every else f"{operate.window.rows} predictions"


def breaches(spec: UseCaseSpec, window: WindowReport) -> list[str]:
    """Model KPI targets the window's measured performance misses."""
    return [f"{k.name}: {k.metric} = {window.performance[k.metric]:.4g}, target {k}"
            for k in spec.kpis if k.kind == "model" and k.metric in window.performance
            and not k.met_by(window.performance[k.metric])]


def _trigger(operate: Operate, spec: UseCaseSpec, window: WindowReport | None) -> str | None:
    if window is None:
        return None
    triggers = operate.retrain.triggers
    if "drift" in triggers and window.dataset_drift:
        return "drift"
    if "performance" in triggers and window.labeled >= operate.retrain.min_labels and breaches(spec, window):
        return "performance"
    return None


def compute(session: Session, settings: Settings, name: str, since: datetime | None = None,
            until: datetime | None = None) -> MonitorReport:
    """Assess every window of the log between ``since`` and ``until``; stores nothing."""
    from valueloop.deploy import labels as labeling
    from valueloop.deploy.label_rule import rule_for
    from valueloop.deploy.predlog import PredictionLog

    usecase = get_usecase(session, name)
    spec = spec_of(usecase)
    operate = operate_of(spec)
    reference = reference_for(session, usecase, spec)
    plog = PredictionLog(settings, name)
    problems: list[str] = []
    log = plog.read(since, until, problems)
    if "source" in log.column_names and log.num_rows:
        import pyarrow.compute as pc

        log = log.filter(pc.not_equal(log["source"], "shadow"))  # the challenger's, not served
    found = labeling.read(plog.root.child("labels"), rule_for(session, name))
    labels, problems = found.valid, problems + found.problems
    windows = [assess(part, start, end, reference, operate.drift, labels)
               for start, end, part in cut(log, operate.window)] if reference.columns else []
    message = None
    if not reference.columns:
        message = "; ".join(reference.problems) or f"'{name}' has no drift reference"
    elif not windows:
        span = f" between {since or 'the start'} and {until or 'now'}"
        message = (f"no predictions of '{name}' in the log{span}: nothing to monitor "
                   f"(the log is {plog.root})")
    newest = windows[-1] if windows else None
    return MonitorReport(
        usecase=name, reference_version=reference.version, window=_describe(operate), since=since, until=until,
        windows=windows, health=scrape(operate.metrics_url, name), kpis=kpis.latest(session, name),
        alerts=[], retrain=_trigger(operate, spec, newest), message=message, problems=problems,
        computed_at=utcnow(),
    )


def _server_samples(session: Session, report: MonitorReport, first: datetime,
                    last: datetime) -> dict[datetime, Any]:
    """The serving counters each window was stored with, kept when it is recomputed, and this
    run's on the newest window: the error rate between two runs is their difference."""
    rows = session.execute(select(MonitorResult.window_start, MonitorResult.health).where(
        MonitorResult.usecase == report.usecase, MonitorResult.window_start >= first,
        MonitorResult.window_start <= last))
    kept = {start: health["server"] for start, health in rows if (health or {}).get("server")}
    if report.health.requests is not None:
        kept[last] = {"requests": report.health.requests, "errors": report.health.errors,
                      "at": report.computed_at.isoformat()}
    return kept


def _store(session: Session, report: MonitorReport) -> None:
    """Replace the stored results of the windows this run recomputed."""
    if not report.windows:
        return
    first, last = report.windows[0].start, report.windows[-1].start
    server = _server_samples(session, report, first, last)
    session.execute(delete(MonitorResult).where(
        MonitorResult.usecase == report.usecase, MonitorResult.window_start >= first,
        MonitorResult.window_start <= last))
    for w in report.windows:
        health: dict[str, Any] = {"latency": w.latency, "problems": w.problems}
        if w.start in server:
            health["server"] = server[w.start]
        session.add(MonitorResult(
            usecase=report.usecase, window_start=w.start, window_end=w.end, rows=w.rows, labeled=w.labeled,
            model_versions=w.model_versions, reference_version=report.reference_version,
            drift={c: d.model_dump() for c, d in w.drift.items()}, dataset_drift=w.dataset_drift,
            drift_share=w.drift_share,
            prediction_drift=w.prediction_drift.model_dump() if w.prediction_drift else None,
            missing={c: m.model_dump() for c, m in w.missing.items()},
            unseen={c: u.model_dump() for c, u in w.unseen.items()},
            performance=w.performance | {f"estimated_{k}": v for k, v in w.estimate.items()},
            estimated=w.estimated, health=health,
        ))


def values_of(report: MonitorReport) -> dict[str, float]:
    """Every value alert rules may name: the newest window's, the server's health, the KPIs."""
    values: dict[str, float] = dict(report.kpis)
    if report.windows:
        values |= report.windows[-1].values()
    if report.health.error_rate is not None:
        values["error_rate"] = report.health.error_rate
    return values


def run_monitor(settings: Settings, actor: str | None, name: str, since: datetime | None = None,
                until: datetime | None = None) -> MonitorReport:
    """Compute, store the windows, raise and deliver alerts. Needs the operations role."""
    with open_session(settings) as s:
        usecase = get_usecase(s, name)
        acting = get_user(s, actor)
        require(s, acting, Action.operate, usecase)
        report = compute(s, settings, name, since, until)
        _store(s, report)
        operate = operate_of(spec_of(usecase))
        raised = alerting.evaluate(s, acting.name, name, operate, values_of(report))
        newest: dict[str, Any] = {}
        if report.windows:
            w = report.windows[-1]
            newest = {"start": w.start.isoformat(), "rows": w.rows, "drifted": w.drifted,
                      "dataset_drift": w.dataset_drift, "performance": w.performance}
        audit.record(s, acting.name, "monitor.run", "monitor", name, usecase=name,
                     after={"windows": len(report.windows), "newest": newest, "alerts": raised,
                            "retrain": report.retrain, "message": report.message,
                            "problems": report.problems[:20]})
    report.alerts = alerting.deliver(settings, raised, operate)
    return report


def view_monitor(settings: Settings, actor: str | None, name: str, since: datetime | None = None,
                 until: datetime | None = None) -> MonitorReport:
    """The same figures, read-only, for any member (the API and the report)."""
    with open_session(settings) as s:
        viewed(s, actor, name)
        return compute(s, settings, name, since, until)
