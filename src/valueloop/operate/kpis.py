"""Business KPIs as the owner's systems report them, tracked against the use case's targets.

Every value is kept (its history); the current cycle's outcome is written through the Outcomes
phase's ``record_outcomes``, so the cycle review sees it where every other outcome is.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.errors import InvalidInput
from valueloop.operate.tables import KpiValue
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.spec import KPI
from valueloop.outcomes.usecases import get_usecase, record_outcomes, spec_of, viewed
from valueloop.outcomes.users import get_user
from valueloop.store.models import utcnow


class KpiValueView(BaseModel):
    id: int
    usecase: str
    metric: str
    value: float
    target: str
    threshold: float | None
    met: bool
    at: datetime
    cycle: int | None
    reported_by: str


def _business_kpis(session: Session, name: str) -> dict[str, KPI]:
    return {k.name: k for k in spec_of(get_usecase(session, name)).kpis if k.kind == "business"}


def _view(row: KpiValue, kpis: dict[str, KPI]) -> KpiValueView:
    kpi = kpis.get(row.metric)
    return KpiValueView(id=row.id, usecase=row.usecase, metric=row.metric, value=row.value,
                        target=str(kpi) if kpi else "", threshold=kpi.target if kpi else None, met=bool(kpi and kpi.met_by(row.value)), at=row.at,
                        cycle=row.cycle, reported_by=row.reported_by)


def record_kpi(session: Session, actor: str | None, name: str, metric: str, value: float,
               at: datetime | None = None) -> KpiValueView:
    """Keep one reported value of a business KPI and judge the current cycle by it."""
    usecase = get_usecase(session, name)
    acting = get_user(session, actor)
    require(session, acting, Action.review, usecase)
    kpis = _business_kpis(session, name)
    if metric not in kpis:
        raise InvalidInput(f"metric: '{metric}' is not a business KPI of '{name}'; "
                           f"declared: {', '.join(kpis) or 'none'}")
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidInput(f"value: expected a finite number, got {value}")
    record_outcomes(session, acting.name, name, {metric: value})
    row = KpiValue(usecase=name, metric=metric, value=value, at=at or utcnow(),
                   cycle=usecase.cycles[-1].number, reported_by=acting.name)
    session.add(row)
    session.flush()
    return _view(row, kpis)


def list_kpis(session: Session, actor: str | None, name: str, metric: str | None = None) -> list[KpiValueView]:
    viewed(session, actor, name)
    kpis = _business_kpis(session, name)
    query = select(KpiValue).where(KpiValue.usecase == name).order_by(KpiValue.at, KpiValue.id)
    if metric is not None:
        query = query.where(KpiValue.metric == metric)
    return [_view(r, kpis) for r in session.scalars(query)]


def latest(session: Session, name: str) -> dict[str, float]:
    """The newest value of each business KPI, by the name alert rules use (``kpi.NAME``)."""
    rows = session.scalars(select(KpiValue).where(KpiValue.usecase == name).order_by(KpiValue.at, KpiValue.id))
    return {f"kpi.{r.metric}": r.value for r in rows}
