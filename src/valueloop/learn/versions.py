"""A use case's registered versions as rows, and a version's KPIs next to its metrics: what the
registry and the model cards both read."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.errors import NotFound
from valueloop.learn.tables import ModelVersion
from valueloop.learn.views import KpiCheck
from valueloop.outcomes.usecases import spec_of
from valueloop.store.models import UseCase


def kpi_checks(usecase: UseCase, metrics: dict[str, Any]) -> list[KpiCheck]:
    """Each KPI target next to the model's value; business KPIs wait for production."""
    checks = []
    for kpi in spec_of(usecase).kpis:
        value = metrics.get(kpi.metric) if kpi.kind == "model" else None
        checks.append(KpiCheck(name=kpi.name, kind=kpi.kind, target=str(kpi), value=value,
                               met=None if value is None else kpi.met_by(value)))
    return checks


def version_row(session: Session, usecase: str, ref: int | str) -> ModelVersion:
    """A model version by number, or by the alias it holds."""
    rows = session.scalars(select(ModelVersion).where(ModelVersion.usecase == usecase)
                           .order_by(ModelVersion.version)).all()
    if isinstance(ref, str) and not ref.isdigit():
        found = [r for r in rows if ref in r.aliases]
        if not found:
            raise NotFound(f"no model version of '{usecase}' holds the alias '{ref}'")
        return found[0]
    found = [r for r in rows if r.version == int(ref)]
    if not found:
        known = ", ".join(f"v{r.version}" for r in rows) or "none yet"
        raise NotFound(f"model version {ref} of '{usecase}' does not exist; registered: {known}")
    return found[0]
