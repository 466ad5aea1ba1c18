"""Alerts: rules on monitored values, deduplicated by key within the rule's window, delivered to
the log, webhooks (HTTP POST of JSON) and e-mail (SMTP), retried and else marked failed, never
dropped; operations acknowledge them.

An alert is committed before it is delivered, so a crash during delivery leaves it on record.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.config import Settings
from valueloop.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from valueloop.operate.tables import Alert
from valueloop.outcomes import audit
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.spec import Operate, Route
from valueloop.outcomes.usecases import get_usecase
from valueloop.outcomes.users import get_user
from valueloop.store import session as open_session
from valueloop.store.models import utcnow

log = logging.getLogger("valueloop.alerts")
STATUSES = ("open", "acknowledged", "failed")
_BACKOFF_SECONDS = 0.2


class Delivery(BaseModel):
    attempts: int
    delivered: bool
    error: str | None = None
    at: datetime | None = None


class AlertView(BaseModel):
    id: int
    usecase: str
    rule: str
    metric: str
    value: float
    threshold: float
    message: str
    status: str
    dedup_key: str
    occurrences: int
    deliveries: dict[str, Delivery]
    created_at: datetime
    last_seen_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None


def _view(alert: Alert) -> AlertView:
    return AlertView.model_validate(alert, from_attributes=True)


def evaluate(session: Session, actor: str, usecase: str, operate: Operate,
             values: dict[str, float]) -> list[int]:
    """Fire every rule whose value crosses its threshold; a repeat within the rule's dedup window
    counts on the open alert instead of raising a new one. Returns the ids of new alerts."""
    new = []
    now = utcnow()
    for rule in operate.alerts:
        value = values.get(rule.metric)
        if value is None or not rule.comparator.holds(value, rule.threshold):
            continue
        key = f"{usecase}:{rule.name}"
        recent = session.scalar(
            select(Alert).where(Alert.dedup_key == key).order_by(Alert.id.desc()).limit(1))
        if recent is not None and now - recent.created_at < rule.dedup.delta:
            recent.occurrences += 1
            recent.last_seen_at, recent.value = now, value
            continue
        alert = Alert(
            usecase=usecase, rule=rule.name, metric=rule.metric, value=value, threshold=rule.threshold,
            message=f"{usecase}: {rule.metric} = {value:.4g} {rule.comparator.value} {rule.threshold:g} (rule {rule.name})",
            status="open", dedup_key=key, occurrences=1,
            deliveries={r: Delivery(attempts=0, delivered=False).model_dump(mode="json") for r in rule.routes},
            created_at=now, last_seen_at=now,
        )
        session.add(alert)
        session.flush()
        audit.record(session, actor, "alert.raise", "alert", alert.id, usecase=usecase,
                     after={"rule": rule.name, "metric": rule.metric, "value": value})
        new.append(alert.id)
    return new


def _payload(alert: Alert) -> dict[str, Any]:
    return {"id": alert.id, "usecase": alert.usecase, "rule": alert.rule, "metric": alert.metric,
            "value": alert.value, "threshold": alert.threshold, "message": alert.message,
            "created_at": alert.created_at.isoformat()}


def _send(route: Route | None, alert: Alert) -> None:
    """One delivery attempt; raises on any failure."""
    if route is None:  # the built-in log route
        log.warning("ALERT %s", alert.message)
        return
    if route.kind == "webhook":
        import httpx

        assert route.url is not None
        response = httpx.post(route.url, json=_payload(alert), timeout=route.timeout)
        response.raise_for_status()
        return
    import smtplib
    from email.message import EmailMessage

    assert route.host is not None and route.sender is not None
    message = EmailMessage()
    message["Subject"] = f"[valueloop] {alert.usecase}: {alert.rule}"
    message["From"], message["To"] = route.sender, ", ".join(route.to)
    message.set_content(f"{alert.message}\n\nalert {alert.id} at {alert.created_at:%Y-%m-%d %H:%M:%S} UTC; "
                        f"acknowledge with `valueloop alerts ack {alert.id}`.")
    with smtplib.SMTP(route.host, route.port, timeout=route.timeout) as smtp:
        smtp.send_message(message)


def _attempt(route: Route | None, alert: Alert) -> Delivery:
    tries = route.retries if route is not None else 1
    error = None
    for attempt in range(1, tries + 1):
        try:
            _send(route, alert)
            return Delivery(attempts=attempt, delivered=True, at=utcnow())
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the alert, none is lost
            error = f"{type(exc).__name__}: {exc}"
            if attempt < tries:
                time.sleep(_BACKOFF_SECONDS * attempt)
    log.error("alert %s: delivery to %s failed after %d attempt(s): %s",
              alert.id, route.name if route else "log", tries, error)
    return Delivery(attempts=tries, delivered=False, error=error, at=utcnow())


def deliver(settings: Settings, alert_ids: list[int], operate: Operate) -> list[AlertView]:
    """Send each alert to each of its routes that has not received it yet, outside the
    transaction that raised it; an alert whose route still fails after its retries is ``failed``."""
    routes = {r.name: r for r in operate.routes}
    views = []
    for alert_id in alert_ids:
        with open_session(settings) as s:
            alert = s.get(Alert, alert_id)
            if alert is None:
                continue
            deliveries = {name: Delivery.model_validate(d) for name, d in alert.deliveries.items()}
            for name, previous in deliveries.items():
                if not previous.delivered:
                    outcome = _attempt(routes.get(name), alert)
                    outcome.attempts += previous.attempts
                    deliveries[name] = outcome
            alert.deliveries = {n: d.model_dump(mode="json") for n, d in deliveries.items()}
            if any(not d.delivered for d in deliveries.values()) and alert.status == "open":
                alert.status = "failed"
            views.append(_view(alert))
    return views


def list_alerts(session: Session, actor: str | None, usecase: str | None = None,
                status: str | None = None) -> list[AlertView]:
    acting = get_user(session, actor)
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status: must be one of {', '.join(STATUSES)}, got {status!r}")
    query = select(Alert).order_by(Alert.id)
    if usecase is not None:
        require(session, acting, Action.view, get_usecase(session, usecase))
        query = query.where(Alert.usecase == usecase)
    if status is not None:
        query = query.where(Alert.status == status)
    alerts = list(session.scalars(query))
    if usecase is None:
        visible = set()
        for name in {a.usecase for a in alerts}:
            try:
                require(session, acting, Action.view, get_usecase(session, name))
                visible.add(name)
            except PermissionDenied:
                continue
        alerts = [a for a in alerts if a.usecase in visible]
    return [_view(a) for a in alerts]


def _alert(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"alert {alert_id}: no such alert")
    return alert


def get_alert(session: Session, alert_id: int) -> AlertView:
    return _view(_alert(session, alert_id))


def acknowledge(session: Session, actor: str | None, alert_id: int, comment: str | None = None) -> AlertView:
    """Operations take the alert on; a failed delivery is acknowledged the same way."""
    alert = _alert(session, alert_id)
    acting = get_user(session, actor)
    require(session, acting, Action.operate, get_usecase(session, alert.usecase))
    if alert.status == "acknowledged":
        raise Conflict(f"alert {alert_id} was already acknowledged by {alert.acknowledged_by} "
                       f"at {alert.acknowledged_at:%Y-%m-%d %H:%M} UTC")
    before = {"status": alert.status}
    alert.status, alert.acknowledged_by, alert.acknowledged_at = "acknowledged", acting.name, utcnow()
    audit.record(session, acting.name, "alert.acknowledge", "alert", alert.id, usecase=alert.usecase,
                 before=before, after={"status": alert.status, "comment": comment})
    return _view(alert)
