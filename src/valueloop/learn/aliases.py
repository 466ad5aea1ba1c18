"""MLflow's champion and challenger aliases follow valueloop's database, which is their truth.

A promotion (or rollback, or the retraining policy's) changes ``model_versions.aliases`` in the
transaction that records its audit event; only once that commits are MLflow's aliases made to
match. A failure in between (MLflow down, the process killed) leaves MLflow behind, never ahead:
:func:`reconcile` repairs it, and runs after each promotion and when ``valueloop serve`` or
``valueloop server`` starts. A promotion whose transaction fails leaves MLflow untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydantic import BaseModel
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from valueloop.config import Settings
from valueloop.learn import tracking
from valueloop.learn.tables import ModelVersion
from valueloop.store import session as open_session

ALIASES = ("champion", "challenger")
#: the use cases whose aliases this transaction changed, in ``Session.info``
_CHANGED = "valueloop.aliases_changed"
log = logging.getLogger("valueloop.learn")


class AliasChange(BaseModel):
    """One alias MLflow was made to match: ``version`` None when it was removed."""

    usecase: str
    alias: str
    version: int | None
    was: int | None


def held(session: Session, usecases: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
    """Which version holds each alias, by registered model, as the database records it."""
    query = select(ModelVersion.registered_name, ModelVersion.version, ModelVersion.aliases)
    if usecases is not None:
        query = query.where(ModelVersion.usecase.in_(list(usecases)))
    found: dict[str, dict[str, int]] = {}
    for name, version, aliases in session.execute(query):
        found.setdefault(name, {}).update({a: int(version) for a in aliases or () if a in ALIASES})
    return found


def reconcile(settings: Settings, usecases: Iterable[str] | None = None) -> list[AliasChange]:
    """Make MLflow's champion and challenger aliases those of the database (of every use case
    unless named): one read of each registered model, a write only where they differ."""
    with open_session(settings) as s:
        wanted = held(s, usecases)
    client = tracking.client(settings) if wanted else None
    changes = []
    for name, aliases in wanted.items():
        current = {a: int(v) for a, v in client.get_registered_model(name).aliases.items() if a in ALIASES}
        for alias in ALIASES:
            want, have = aliases.get(alias), current.get(alias)
            if want == have:
                continue
            if want is None:
                client.delete_registered_model_alias(name, alias)
            else:
                client.set_registered_model_alias(name, alias, str(want))
            changes.append(AliasChange(usecase=name, alias=alias, version=want, was=have))
    return changes


def reconcile_after_commit(session: Session, settings: Settings, usecase: str) -> None:
    """Reconcile ``usecase`` in MLflow once ``session`` commits; nothing if it rolls back."""
    changed = session.info.setdefault(_CHANGED, set())
    if not changed:
        event.listen(session, "after_commit", lambda committed: reconcile_or_warn(
            settings, committed.info.pop(_CHANGED, ())), once=True)
    changed.add(usecase)


def reconcile_or_warn(settings: Settings, usecases: Iterable[str] | None = None) -> list[AliasChange]:
    """:func:`reconcile`, where MLflow failing must not fail what the database already holds."""
    try:
        return reconcile(settings, usecases)
    except Exception as exc:  # noqa: BLE001 - MLflow's and its store's errors alike; the next reconcile repairs
        log.warning("MLflow's aliases were not brought in line with valueloop's database (%s: %s); "
                    "the database holds them, and the next promotion or `valueloop serve`/`server` start "
                    "reconciles them", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return []
