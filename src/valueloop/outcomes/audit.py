"""The append-only audit log. Services call :func:`record` inside their own transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.store.models import AuditEvent


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    usecase: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def record(
    session: Session,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int,
    *,
    usecase: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            usecase=usecase,
            before=before,
            after=after,
        )
    )


def events(
    session: Session,
    *,
    usecase: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """Events oldest first, filtered; ``action`` matches a prefix (``privacy.`` finds all DPIA events)."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    if usecase:
        query = query.where(AuditEvent.usecase == usecase)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action.startswith(action))
    if since:
        query = query.where(AuditEvent.at >= since)
    rows = session.scalars(query).all()
    if limit is not None:
        rows = rows[-limit:]
    return [AuditEntry.model_validate(r, from_attributes=True) for r in rows]
