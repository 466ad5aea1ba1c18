"""Rollback: give the champion alias back to the version that held it before the current one.

The previous holder is read from the audit trail of promotions (each records the holder it
replaced); the change itself goes through the Learn phase's :func:`promote`, so the same role
check, gates and audit apply, and running servers pick it up like any promotion.
"""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.config import Settings
from valueloop.errors import Conflict
from valueloop.learn.registry import promote
from valueloop.learn.tables import ModelVersion
from valueloop.outcomes import audit
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.usecases import get_usecase
from valueloop.outcomes.users import get_user
from valueloop.store.models import AuditEvent


class RollbackView(BaseModel):
    usecase: str
    rolled_back: int
    champion: int


def _champion(session: Session, usecase: str) -> int:
    for version, aliases in session.execute(
            select(ModelVersion.version, ModelVersion.aliases).where(ModelVersion.usecase == usecase)):
        if "champion" in (aliases or ()):
            return int(version)
    raise Conflict(f"use case '{usecase}' has no champion to roll back")


def previous_champion(session: Session, usecase: str, current: int) -> int:
    """The version the current champion replaced, from the latest promotion that made it champion."""
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.usecase == usecase, AuditEvent.action == "model.promote")
        .order_by(AuditEvent.id.desc()))
    for event in events:
        after, before = event.after or {}, event.before or {}
        if after.get("alias") == "champion" and after.get("holder") == current:
            if before.get("holder") is None:
                break
            return int(before["holder"])
    raise Conflict(f"use case '{usecase}': version {current} became champion with no champion before it; "
                   "there is nothing to roll back to")


def rollback(session: Session, settings: Settings, actor: str | None, usecase: str) -> RollbackView:
    found = get_usecase(session, usecase)
    acting = get_user(session, actor)
    require(session, acting, Action.promote, found)
    current = _champion(session, found.name)
    previous = previous_champion(session, found.name, current)
    promote(session, settings, acting.name, found.name, previous, "champion")
    audit.record(session, acting.name, "deploy.rollback", "model_version", f"{found.name}/v{previous}",
                 usecase=found.name, before={"champion": current}, after={"champion": previous})
    return RollbackView(usecase=found.name, rolled_back=current, champion=previous)
