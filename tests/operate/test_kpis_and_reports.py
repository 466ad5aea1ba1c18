"""Business KPIs on the command line and over HTTP, judged per cycle through the Outcomes phase;
the monitoring report as HTML and as JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from operate.support import log_traffic, set_operate

from valueloop.config import Settings
from valueloop.deploy.labels import record_feedback
from valueloop.errors import InvalidInput
from valueloop.operate.kpis import record_kpi
from valueloop.outcomes.usecases import detail, get_usecase
from valueloop.outcomes.users import create_token
from valueloop.store import session


def test_kpis_on_the_command_line_judge_the_current_cycle(settings: Settings, ingested: Path, run_cli) -> None:
    done = run_cli(settings, "kpi", "record", "churn", "churn_rate", "0.091", as_user="olivia")
    assert done.returncode == 0, done.stderr
    assert "churn_rate = 0.091 on cycle 1: target monthly_churn_rate < 0.08 ratio missed" in done.stdout
    with session(settings) as s:
        record_kpi(s, "ana", "churn", "churn_rate", 0.074)
        with pytest.raises(InvalidInput, match="'recall' is not a business KPI of 'churn'; declared: "
                                               "churn_rate, retention_calls"):
            record_kpi(s, "olivia", "churn", "recall", 0.8)
    listed = run_cli(settings, "kpi", "list", "churn", "--json", as_user="oscar")
    assert listed.returncode == 0, listed.stderr
    assert [(v["value"], v["met"], v["reported_by"]) for v in json.loads(listed.stdout)] == [
        (0.091, False, "olivia"), (0.074, True, "ana")]
    with session(settings) as s:
        cycle = detail(get_usecase(s, "churn")).cycles[-1]
        assert cycle.kpi_outcomes["churn_rate"].value == 0.074 and cycle.kpi_outcomes["churn_rate"].met


def test_kpis_over_http_and_the_monitoring_report(settings: Settings, ingested: Path, run_cli,
                                                  tmp_path: Path) -> None:
    from valueloop.server.app import create_app

    set_operate(settings, {"window": {"every": "1d"}})
    day = datetime(2026, 4, 1, 9, tzinfo=UTC)
    traffic = log_traffic(settings, 500, 41, period=1, ts=day)
    record_feedback(settings, "eve", "churn", zip(traffic.ids[:300], traffic.truth[:300]))
    with session(settings) as s:
        tokens = {who: create_token(s, who).token for who in ("olivia", "dana")}
    client = TestClient(create_app(settings))

    def call(method: str, path: str, who: str, **kwargs):  # type: ignore[no-untyped-def]
        return client.request(method, path, headers={"Authorization": f"Bearer {tokens[who]}"}, **kwargs)

    created = call("POST", "/api/usecases/churn/kpis", "olivia", json={"metric": "retention_calls", "value": 3.5})
    assert created.status_code == 201, created.text
    assert created.json()["met"] is True and created.json()["cycle"] == 1
    refused = call("POST", "/api/usecases/churn/kpis", "dana", json={"metric": "retention_calls", "value": 3})
    assert refused.status_code == 403 and "requires role analyst or owner" in refused.json()["error"]["message"]
    bad = call("POST", "/api/usecases/churn/kpis", "olivia", json={"metric": "retention_calls", "value": "many"})
    assert bad.status_code == 422

    monitor = call("GET", "/api/usecases/churn/monitor", "dana")
    assert monitor.status_code == 200, monitor.text
    (window,) = monitor.json()["windows"]
    assert window["rows"] == 500 and window["labeled"] == 300 and window["dataset_drift"] is True
    assert "roc_auc" in window["performance"] and window["estimated"] is False
    page = call("GET", "/api/usecases/churn/monitor/report", "dana")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]

    out = tmp_path / "reports" / "churn.html"
    done = run_cli(settings, "monitor", "churn", "--report", str(out), as_user="oscar")
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert "Monitoring report: churn" in html and "dataset drift: <span class=\"bad\">yes" in html
    assert html.count("data:image/png;base64,") >= 9  # a chart per feature, performance, the KPI
    assert "retention_calls: 3.5 (target calls_per_saved_customer &lt;= 4 calls, cycle 1)" in html
