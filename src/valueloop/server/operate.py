"""HTTP routes of the Operate phase: business KPIs, the monitor's figures and report, alerts,
retraining."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from valueloop.deploy import labels
from valueloop.deploy.predlog import Compaction
from valueloop.operate import alerts, erasure, kpis, retention, retrain
from valueloop.operate.compaction import compact_log
from valueloop.operate.monitor import MonitorReport, run_monitor, view_monitor
from valueloop.server.deps import DB, Actor, AppSettings, Moment, RowId

router = APIRouter(tags=["operate"])


class KpiReport(BaseModel):
    metric: str
    value: float
    at: Moment | None = None


class Correction(BaseModel):
    label: bool | int | float | str


class Acknowledgement(BaseModel):
    comment: str | None = None


@router.post("/api/usecases/{name}/kpis", status_code=201)
def record_kpi(name: str, body: KpiReport, s: DB, actor: Actor) -> kpis.KpiValueView:
    return kpis.record_kpi(s, actor, name, body.metric, body.value, body.at)


@router.get("/api/usecases/{name}/kpis")
def list_kpis(name: str, s: DB, actor: Actor, metric: str | None = None) -> list[kpis.KpiValueView]:
    return kpis.list_kpis(s, actor, name, metric)


@router.get("/api/usecases/{name}/monitor")
def monitor(name: str, actor: Actor, settings: AppSettings, since: datetime | None = None,
            until: datetime | None = None) -> MonitorReport:
    return view_monitor(settings, actor, name, since, until)


@router.post("/api/usecases/{name}/monitor")
def run_monitoring(name: str, actor: Actor, settings: AppSettings, since: Moment | None = None,
                   until: Moment | None = None) -> MonitorReport:
    """Run the monitor as `valueloop monitor` does: store the windows, raise and deliver alerts
    (operations)."""
    return run_monitor(settings, actor, name, since, until)


@router.post("/api/usecases/{name}/predictions/compact")
def compact_predictions(name: str, actor: Actor, settings: AppSettings) -> Compaction:
    """Compact the prediction log's past days, as `valueloop compact` does (operations)."""
    return compact_log(settings, actor, name)


@router.get("/api/usecases/{name}/monitor/report", response_class=HTMLResponse)
def monitor_report(name: str, s: DB, actor: Actor, settings: AppSettings, since: datetime | None = None,
                   until: datetime | None = None) -> HTMLResponse:
    from valueloop.operate.report import render

    report = view_monitor(settings, actor, name, since, until)
    return HTMLResponse(render(report, kpis.list_kpis(s, actor, name)))


@router.get("/api/alerts")
def list_alerts(s: DB, actor: Actor, usecase: str | None = None, status: str | None = None) -> list[alerts.AlertView]:
    return alerts.list_alerts(s, actor, usecase, status)


@router.post("/api/alerts/{alert_id}/ack")
def acknowledge(alert_id: RowId, body: Acknowledgement, s: DB, actor: Actor) -> alerts.AlertView:
    return alerts.acknowledge(s, actor, alert_id, body.comment)


@router.post("/api/usecases/{name}/retrain", status_code=201)
def start_retraining(name: str, actor: Actor, settings: AppSettings) -> retrain.RetrainView:
    return retrain.retrain(settings, actor, name, "manual")


@router.get("/api/usecases/{name}/retrain")
def retraining_history(name: str, s: DB, actor: Actor) -> list[retrain.RetrainView]:
    return retrain.list_requests(s, actor, name)


@router.get("/api/usecases/{name}/labels")
def list_labels(name: str, actor: Actor, settings: AppSettings, bad: bool = False,
                request_id: str | None = None) -> list[labels.LabelView]:
    return labels.list_labels(settings, actor, name, bad=bad, request_id=request_id)


@router.put("/api/usecases/{name}/labels/{request_id:path}")
def correct_label(name: str, request_id: str, body: Correction, actor: Actor,
                  settings: AppSettings) -> labels.LabelView:
    """Replace a request's label, checked against the target (data scientist or operations)."""
    return labels.correct_label(settings, actor, name, request_id, body.label)


@router.delete("/api/usecases/{name}/labels/{request_id:path}")
def delete_label(name: str, request_id: str, actor: Actor, settings: AppSettings) -> labels.LabelView:
    """Withdraw a request's label (data scientist or operations)."""
    return labels.delete_label(settings, actor, name, request_id)


class RetentionRun(BaseModel):
    models_too: bool = False


class Subject(BaseModel):
    column: str
    value: str
    redis_urls: list[str] = Field([], description="Redis servers consumers were given, with their passwords: "
                                  "searched too")


@router.post("/api/usecases/{name}/privacy/retention", tags=["privacy"])
def enforce_retention(name: str, body: RetentionRun, actor: Actor, settings: AppSettings) -> retention.RetentionReport:
    """Delete what is kept past the DPIA's retention (privacy officer or operations)."""
    return retention.enforce(settings, actor, name, models_too=body.models_too)


@router.post("/api/usecases/{name}/privacy/erase", tags=["privacy"])
def erase(name: str, body: Subject, actor: Actor, settings: AppSettings) -> erasure.ErasureReport:
    """Erase a data subject's rows everywhere they are kept (privacy officer)."""
    return erasure.erase(settings, actor, name, body.column, body.value, body.redis_urls)


@router.get("/api/usecases/{name}/privacy/erasures", tags=["privacy"])
def erasures(name: str, actor: Actor, settings: AppSettings) -> list[erasure.ErasureView]:
    return erasure.erasures(settings, actor, name)
