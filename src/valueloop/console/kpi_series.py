"""Each KPI of a use case per cycle, against its target: business KPIs as recorded on the cycle,
model KPIs as the cycle's newest model version was evaluated and as production measured them
from late labels (the stored monitor windows of the cycle, never the prediction log)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, load_only

from valueloop.console import charts
from valueloop.learn.tables import ModelVersion, TrainingRun
from valueloop.operate.tables import MonitorResult
from valueloop.outcomes.spec import KPI
from valueloop.outcomes.usecases import CycleView

Source = Literal["recorded", "evaluation", "production"]


class KpiPoint(BaseModel):
    cycle: int
    source: Source
    value: float
    met: bool
    #: where the value comes from: "v3" for an evaluation, "1,200 labels" for production
    detail: str = ""


class KpiSeries(BaseModel):
    name: str
    kind: str
    metric: str
    target: float
    rule: str
    points: list[KpiPoint]


def _spans(cycles: list[CycleView]) -> list[tuple[int, datetime, datetime | None]]:
    return [(c.number, c.started_at, c.ended_at) for c in cycles]


def _cycle_of(moment: datetime, spans: list[tuple[int, datetime, datetime | None]]) -> int | None:
    return next((n for n, start, end in reversed(spans) if moment >= start and (end is None or moment < end)), None)


def _evaluations(session: Session, usecase: str, spans: list) -> dict[int, tuple[int, dict[str, Any]]]:
    """The newest model version registered in each cycle, with its run's metrics."""
    rows = session.execute(select(ModelVersion.version, ModelVersion.created_at, TrainingRun.metrics)
                           .join(TrainingRun, TrainingRun.run_id == ModelVersion.run_id)
                           .where(ModelVersion.usecase == usecase).order_by(ModelVersion.version))
    found: dict[int, tuple[int, dict[str, Any]]] = {}
    for version, created, metrics in rows:
        cycle = _cycle_of(created, spans)
        if cycle is not None:
            found[cycle] = (version, metrics or {})
    return found


def _production(session: Session, usecase: str, spans: list) -> dict[int, list[MonitorResult]]:
    """The labeled monitor windows of each cycle."""
    rows = session.scalars(select(MonitorResult).options(load_only(
        MonitorResult.window_start, MonitorResult.labeled, MonitorResult.performance))
                           .where(MonitorResult.usecase == usecase, MonitorResult.labeled > 0))
    found: dict[int, list[MonitorResult]] = {}
    for row in rows:
        cycle = _cycle_of(row.window_start, spans)
        if cycle is not None:
            found.setdefault(cycle, []).append(row)
    return found


def _measured(windows: list[MonitorResult], metric: str) -> tuple[float, int] | None:
    """The metric over the cycle's windows, each weighted by its labels."""
    known = [(w.performance[metric], w.labeled) for w in windows
             if isinstance((w.performance or {}).get(metric), int | float)]
    labels = sum(n for _, n in known)
    return (sum(v * n for v, n in known) / labels, labels) if labels else None


def kpi_series(session: Session, usecase: str, kpis: list[KPI], cycles: list[CycleView]) -> list[KpiSeries]:
    """Every KPI's values per cycle by where they come from."""
    spans = _spans(cycles)
    models = any(k.kind == "model" for k in kpis) and bool(cycles)
    evaluated = _evaluations(session, usecase, spans) if models else {}
    produced = _production(session, usecase, spans) if models else {}
    found = []
    for kpi in kpis:
        points = []
        for c in cycles:
            recorded = c.kpi_outcomes.get(kpi.name)
            if recorded is not None:
                points.append(KpiPoint(cycle=c.number, source="recorded", value=recorded.value, met=recorded.met))
            if kpi.kind != "model":
                continue
            version, metrics = evaluated.get(c.number, (None, {}))
            if isinstance(metrics.get(kpi.metric), int | float):
                value = float(metrics[kpi.metric])
                points.append(KpiPoint(cycle=c.number, source="evaluation", value=value, met=kpi.met_by(value),
                                       detail=f"v{version}"))
            measured = _measured(produced.get(c.number, []), kpi.metric)
            if measured is not None:
                points.append(KpiPoint(cycle=c.number, source="production", value=measured[0],
                                       met=kpi.met_by(measured[0]), detail=f"{measured[1]:,} labels"))
        found.append(KpiSeries(name=kpi.name, kind=kpi.kind, metric=kpi.metric, target=kpi.target,
                               rule=str(kpi), points=points))
    return found


def kpi_chart(series: KpiSeries) -> charts.Spec:
    """The KPI's values per cycle, one line per source, with its target as a dashed rule."""
    values = [{"cycle": f"cycle {p.cycle}", series.metric: p.value, "source": p.source,
               "verdict": "met" if p.met else "missed", "from": p.detail} for p in series.points]
    return charts.lines(values, "cycle", series.metric, "source", f"{series.name} per cycle against {series.rule}",
                        target=series.target, extra_tooltip=("verdict", "from"))
