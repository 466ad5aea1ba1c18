"""The Operate page: the stored monitor windows over time (drift per feature and window,
prediction drift, performance from late labels beside the estimate made before them), business
KPIs against their targets, alerts with their acknowledgement, and the retraining runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, load_only

from valueloop.console import charts
from valueloop.console.web import Form, View, etag_of, text
from valueloop.operate.alerts import AlertView, acknowledge, get_alert, list_alerts
from valueloop.operate.kpis import list_kpis
from valueloop.operate.retrain import RetrainView, list_requests
from valueloop.operate.tables import MonitorResult
from valueloop.outcomes.roles import Action, allows, require
from valueloop.outcomes.spec import UseCaseSpec
from valueloop.outcomes.usecases import UseCaseView, get_usecase, spec_of
from valueloop.outcomes.usecases import view as usecase_view

router = APIRouter()
#: the monitor windows drawn, the newest
WINDOWS = 60
#: metrics the estimate before labels knows (a classifier's, from its own probabilities)
ESTIMATED = ("accuracy", "f1", "precision", "recall")


class WindowRow(BaseModel):
    window: str
    start: str
    rows: int
    labeled: int
    drifted: list[str]
    dataset_drift: bool
    prediction_drift: float | None
    measured: float | None
    estimated: float | None


class OperatePage(BaseModel):
    usecase: UseCaseView
    metric: str
    windows: list[WindowRow]
    charts: dict[str, Any]
    kpis: list[dict[str, Any]]
    alerts: list[AlertView]
    #: each alert's version, on its acknowledge form: one that fired again meanwhile is not taken on unseen
    alert_etags: dict[int, str]
    retraining: list[RetrainView]
    may_operate: bool


def _metric(spec: UseCaseSpec) -> str:
    """The performance metric drawn: the first model KPI the estimate knows, else accuracy."""
    if spec.model.task != "classification":
        return spec.model.primary_metric
    wanted = [k.metric for k in spec.kpis if k.kind == "model"] + [spec.model.primary_metric]
    return next((m for m in wanted if m in ESTIMATED), "accuracy")


def _windows(session: Session, usecase: str) -> list[MonitorResult]:
    rows = session.scalars(select(MonitorResult).options(load_only(
        MonitorResult.window_start, MonitorResult.rows, MonitorResult.labeled, MonitorResult.drift,
        MonitorResult.dataset_drift, MonitorResult.prediction_drift, MonitorResult.performance))
                           .where(MonitorResult.usecase == usecase)
                           .order_by(MonitorResult.window_start.desc(), MonitorResult.id.desc()).limit(WINDOWS))
    return list(rows)[::-1]


def _charts(rows: list[MonitorResult], table: list[WindowRow], metric: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    cells = [{"feature": f, "window": w.window, "start": w.start, "score": round(d.get("score", 0.0), 4),
              "threshold": d.get("threshold"), "drifted": bool(d.get("drifted"))}
             for r, w in zip(rows, table) for f, d in (r.drift or {}).items()]
    if cells:
        found["drift"] = charts.heatmap(cells)
    prediction = [{"window": w.window, "score": w.prediction_drift, "series": "prediction drift"}
                  for w in table if w.prediction_drift is not None]
    if prediction:
        threshold = next((r.prediction_drift.get("threshold") for r in rows if r.prediction_drift), None)
        found["prediction"] = charts.lines(prediction, "window", "score", "series", "prediction drift per window",
                                           target=threshold)
    points = [{"window": w.window, metric: v, "series": series} for w in table
              for series, v in (("measured from labels", w.measured), ("estimated before labels", w.estimated))
              if v is not None]
    if points:
        found["performance"] = charts.lines(points, "window", metric, "series",
                                            f"{metric} measured from labels and estimated before them")
    return found


def _kpi_charts(session: Session, actor: str, usecase: str, spec: UseCaseSpec) -> list[dict[str, Any]]:
    values = list_kpis(session, actor, usecase)
    shown = []
    for kpi in (k for k in spec.kpis if k.kind == "business"):
        mine = [v for v in values if v.metric == kpi.name]
        points = [{"reported": f"{v.at:%Y-%m-%d %H:%M}", kpi.name: v.value, "series": kpi.name} for v in mine]
        shown.append({"name": kpi.name, "target": str(kpi), "latest": mine[-1].value if mine else None,
                      "met": mine[-1].met if mine else None, "count": len(mine),
                      "chart": charts.lines(points, "reported", kpi.name, "series", f"{kpi.name} against its target",
                                            target=kpi.target) if points else None})
    return shown


def build(view: View, usecase: str) -> OperatePage:
    session, actor = view.s, view.name
    alerts = list_alerts(session, actor, usecase)  # checks the view permission
    found = get_usecase(session, usecase)
    spec = spec_of(found)
    metric = _metric(spec)
    rows = _windows(session, usecase)
    table = []
    for i, r in enumerate(rows, 1):
        performance = r.performance or {}
        table.append(WindowRow(
            window=f"#{i}", start=f"{r.window_start:%m-%d %H:%M}", rows=r.rows, labeled=r.labeled,
            drifted=sorted(c for c, d in (r.drift or {}).items() if d.get("drifted")), dataset_drift=r.dataset_drift,
            prediction_drift=(r.prediction_drift or {}).get("score"),
            measured=performance.get(metric), estimated=performance.get(f"estimated_{metric}")))
    return OperatePage(usecase=usecase_view(found), metric=metric, windows=table[::-1],
                       charts=_charts(rows, table, metric), kpis=_kpi_charts(session, actor, usecase, spec),
                       alerts=alerts[::-1], alert_etags={a.id: etag_of(a) for a in alerts},
                       retraining=list_requests(session, actor, usecase)[::-1],
                       may_operate=allows(session, view.user, Action.operate, found))


@router.get("/usecases/{name}/operate")
def page(name: str, view: View) -> Response:
    return view.render("operate.html", build(view, name), nav="usecases")


@router.post("/alerts/{alert_id}/ack")
def ack(alert_id: int, view: View, form: Form) -> Response:
    """Operations take the alert on, as `valueloop alerts ack` does."""
    alert = get_alert(view.s, alert_id)
    usecase, comment = alert.usecase, text(form, "comment") or None
    require(view.s, view.user, Action.operate, get_usecase(view.s, usecase))  # before telling it changed
    view.fresh(form, etag_of(alert), f"alert {alert_id}")
    return view.attempt(lambda s: acknowledge(s, view.name, alert_id, comment), f"/usecases/{usecase}/operate",
                        lambda problems: view.render("operate.html", build(view, usecase), nav="usecases",
                                                     problems=problems))
