"""Alerts over real receivers: a local SMTP server and an HTTP endpoint; deduplication; a webhook
that times out and an SMTP server that refuses are retried, then recorded as failed; operations
acknowledge."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from operate.support import log_traffic, set_operate
from sqlalchemy import select

from valueloop.config import Settings
from valueloop.errors import Conflict, PermissionDenied
from valueloop.operate.alerts import acknowledge, list_alerts
from valueloop.operate.monitor import run_monitor
from valueloop.operate.tables import Alert
from valueloop.store import session


def _policy(routes: list[dict], names: list[str]) -> dict:
    return {"window": {"rows": 5000}, "routes": routes,
            "alerts": [{"name": "data_drift", "metric": "dataset_drift_share", "comparator": ">=",
                        "threshold": 0.3, "routes": ["log", *names], "dedup": "1h"}]}


def test_an_alert_reaches_the_log_a_webhook_and_a_mailbox_once(
        settings: Settings, ingested: Path, http_receiver, smtp_server, caplog: pytest.LogCaptureFixture) -> None:
    set_operate(settings, _policy([
        {"name": "ops-hook", "kind": "webhook", "url": http_receiver.url},
        {"name": "ops-mail", "kind": "email", "host": "127.0.0.1", "port": smtp_server.port,
         "from": "valueloop@example.com", "to": ["oscar@example.com"]},
    ], ["ops-hook", "ops-mail"]))
    log_traffic(settings, 600, 31, period=1)
    with caplog.at_level(logging.WARNING, logger="valueloop.alerts"):
        (alert,) = run_monitor(settings, "oscar", "churn").alerts
    assert alert.status == "open" and alert.rule == "data_drift" and alert.value >= 0.3
    assert {r: (d.delivered, d.attempts) for r, d in alert.deliveries.items()} == {
        "log": (True, 1), "ops-hook": (True, 1), "ops-mail": (True, 1)}
    assert "ALERT churn: dataset_drift_share" in caplog.text
    (body,) = http_receiver.bodies
    assert body["id"] == alert.id and body["rule"] == "data_drift" and body["usecase"] == "churn"
    (mail,) = smtp_server.messages
    assert mail["To"] == "oscar@example.com" and "churn: data_drift" in mail["Subject"]
    assert f"valueloop alerts ack {alert.id}" in mail.get_payload()

    again = run_monitor(settings, "oscar", "churn")  # the same condition within the hour
    assert again.alerts == []
    with session(settings) as s:
        (row,) = s.scalars(select(Alert)).all()
        assert row.occurrences == 2
    assert len(http_receiver.bodies) == 1 and len(smtp_server.messages) == 1


def test_failed_deliveries_are_retried_then_recorded_and_acknowledged(
        settings: Settings, ingested: Path, slow_receiver: str, refusing_smtp: int) -> None:
    set_operate(settings, _policy([
        {"name": "slow-hook", "kind": "webhook", "url": slow_receiver, "timeout": 0.3, "retries": 2},
        {"name": "ops-mail", "kind": "email", "host": "127.0.0.1", "port": refusing_smtp, "timeout": 2,
         "retries": 2, "from": "valueloop@example.com", "to": ["oscar@example.com"]},
    ], ["slow-hook", "ops-mail"]))
    log_traffic(settings, 600, 32, period=1)
    (alert,) = run_monitor(settings, "oscar", "churn").alerts
    assert alert.status == "failed"
    hook, mail = alert.deliveries["slow-hook"], alert.deliveries["ops-mail"]
    assert (hook.delivered, hook.attempts) == (False, 2) and "Timeout" in hook.error
    assert (mail.delivered, mail.attempts) == (False, 2) and "refused" in mail.error
    assert alert.deliveries["log"].delivered

    with session(settings) as s:
        (listed,) = list_alerts(s, "olivia", "churn", status="failed")
        assert listed.id == alert.id
        with pytest.raises(PermissionDenied, match="requires role operations"):
            acknowledge(s, "dana", alert.id)
    with session(settings) as s:
        done = acknowledge(s, "oscar", alert.id, "webhook host is down; on it")
        assert (done.status, done.acknowledged_by) == ("acknowledged", "oscar")
    with session(settings) as s, pytest.raises(Conflict, match="already acknowledged by oscar"):
        acknowledge(s, "oscar", alert.id)


def test_a_route_must_be_declared(settings: Settings, ingested: Path) -> None:
    from valueloop.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unknown route"):
        set_operate(settings, _policy([], ["pager"]))
