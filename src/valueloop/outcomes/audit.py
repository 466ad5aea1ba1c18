"""The append-only, tamper-evident audit log. Services call :func:`record` inside their own
transaction; its events are written as it commits. Each event carries the hash of the event
before it and of its own content, so :func:`verify` finds any change made behind the database's
triggers; heads exported to ``<home>/audit/heads.jsonl`` reveal a truncation, which no chain can
show by itself."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from valueloop.errors import InvalidInput
from valueloop.store.models import AuditChainHead, AuditEvent, Member, UseCase, User, utcnow

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from valueloop.config import Settings

log = logging.getLogger("valueloop.audit")

#: the hash the first event links to
GENESIS = "0" * 64
_CONTENT = ("id", "at", "actor", "action", "object_type", "object_id", "usecase", "before", "after",
            "prev_hash")
_HEAD = AuditChainHead.__table__
_PENDING = "valueloop.audit.pending"


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


class Head(BaseModel):
    """A point of the chain: the id of an event and its hash (``at``: when it was exported)."""

    position: int
    hash: str
    at: datetime | None = None


class Verification(BaseModel):
    ok: bool
    events: int = Field(description="events checked")
    head: Head = Field(description="the last event that checked out")
    first_broken: int | None = Field(None, description="id of the first event that does not check out")
    problem: str | None = None
    exported: Head | None = Field(None, description="the last exported head compared against")


def content_hash(event: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON of the event's content and its link to the event before."""
    content = {name: event[name] for name in _CONTENT}
    content["at"] = event["at"].astimezone(UTC).isoformat()
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


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
    """Add an event to the caller's transaction; it is chained as the transaction commits."""
    session.info.setdefault(_PENDING, []).append({
        "at": utcnow(), "actor": actor, "action": action, "object_type": object_type,
        "object_id": str(object_id), "usecase": usecase,
        # as the JSON column gives it back, and safe from the caller's later changes
        "before": _as_stored(before), "after": _as_stored(after),
    })


def _as_stored(change: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if change is None else json.loads(json.dumps(change))


@event.listens_for(Session, "before_commit")
def _chain(session: Session) -> None:
    """Chain the transaction's events. The chain head's row lock is the transaction's last lock,
    taken after its other changes are flushed: concurrent commits queue on it, in id order, and
    nothing can be waiting on a lock the head's holder wants (no deadlock)."""
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    session.flush()
    advance = (update(_HEAD).where(_HEAD.c.id == 1).values(position=_HEAD.c.position + len(pending))
               .returning(_HEAD.c.position, _HEAD.c.hash))
    last, prev_hash = session.execute(advance).one()
    for position, fields in enumerate(pending, start=last - len(pending) + 1):
        fields |= {"id": position, "prev_hash": prev_hash}
        prev_hash = content_hash(fields)
        session.add(AuditEvent(**fields, hash=prev_hash))
    session.execute(update(_HEAD).where(_HEAD.c.id == 1).values(hash=prev_hash))


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, _previous: Any) -> None:
    session.info.pop(_PENDING, None)


def events(
    session: Session,
    *,
    viewer: User | None = None,
    usecase: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    until: datetime | None = None,
) -> list[AuditEntry]:
    """Events oldest first, filtered; ``action`` matches a prefix (``privacy.`` finds all DPIA events).
    A ``viewer`` sees what they did and the events of the use cases they may view; an admin, all."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    if viewer is not None and not viewer.is_admin:
        query = query.where(or_(AuditEvent.actor == viewer.name, _viewable_usecase(viewer)))
    if usecase:
        query = query.where(AuditEvent.usecase == usecase)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action.startswith(action))
    if since:
        query = query.where(AuditEvent.at >= since)
    if until:
        query = query.where(AuditEvent.at < until)
    rows = session.scalars(query).all()
    if limit is not None:
        rows = rows[-limit:]
    return [AuditEntry.model_validate(r, from_attributes=True) for r in rows]


def trail(
    session: Session,
    viewer: str | None,
    *,
    usecase: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    until: datetime | None = None,
) -> list[AuditEntry]:
    """The trail as the acting user may read it; naming a use case needs the right to view it."""
    # imported here: users and usecases record their changes through this module
    from valueloop.outcomes.roles import Action, require
    from valueloop.outcomes.usecases import get_usecase
    from valueloop.outcomes.users import get_user

    acting = get_user(session, viewer)
    if usecase:
        require(session, acting, Action.view, get_usecase(session, usecase))
    return events(session, viewer=acting, usecase=usecase, actor=actor, action=action, since=since,
                  limit=limit, until=until)


def _viewable_usecase(viewer: User) -> Any:
    """The SQL twin of :func:`~valueloop.outcomes.roles.roles_of`: members view their use cases,
    an appointed privacy officer views every use case."""
    if viewer.is_privacy_officer:
        return AuditEvent.usecase.is_not(None)
    mine = (select(UseCase.name).join(Member, Member.usecase_id == UseCase.id)
            .where(Member.user_id == viewer.id))
    return AuditEvent.usecase.in_(mine)


# -- verification ---------------------------------------------------------------------------------


def verify(session: Session, exported: Iterable[Head] = ()) -> Verification:
    """Check the whole chain, the stored head, and every exported head against it."""
    marks = {h.position: h for h in exported}
    last_mark = max(marks.values(), key=lambda h: h.position, default=None)
    return _check(session, Head(position=0, hash=GENESIS), marks, last_mark)


def _check(session: Session, anchor: Head, marks: dict[int, Head], last_mark: Head | None) -> Verification:
    """Walk the chain from ``anchor`` (an event known good), then compare its end with the last
    exported head and with the stored head. Stops at the first event that does not check out."""
    position, prev, count = anchor.position, anchor.hash, 0

    def broken(event_id: int, problem: str) -> Verification:
        return Verification(ok=False, events=count, head=Head(position=position, hash=prev),
                            first_broken=event_id, problem=problem, exported=last_mark)

    columns = [getattr(AuditEvent, name) for name in (*_CONTENT, "hash")]
    rows = session.execute(select(*columns).where(AuditEvent.id > anchor.position).order_by(AuditEvent.id)
                           .execution_options(yield_per=1000)).mappings()
    for row in rows:
        event_id = row["id"]
        if content_hash(row) != row["hash"]:
            return broken(event_id, f"event #{event_id} does not match its content hash: it was changed")
        if row["prev_hash"] != prev:
            return broken(event_id, f"event #{event_id} does not follow event #{position}: "
                                    "an event was deleted, inserted or moved before it")
        if (mark := marks.get(event_id)) and mark.hash != row["hash"]:
            return broken(event_id, f"event #{event_id} differs from the head exported at {_when(mark)}: "
                                    "the log was rewritten")
        position, prev, count = event_id, row["hash"], count + 1
    if last_mark and last_mark.position > position:
        return broken(last_mark.position, _truncated(last_mark, position))
    stored = session.execute(select(_HEAD.c.position, _HEAD.c.hash)).one()
    if stored.position > position:
        return broken(position + 1, f"the chain head names event #{stored.position} but the log ends at "
                                    f"event #{position}: events were deleted at the end")
    if (stored.position, stored.hash) != (position, prev):
        return broken(stored.position + 1 if stored.position < position else position,
                      f"the chain head names event #{stored.position}, not the log's last event "
                      f"#{position} as it is: events were appended or changed outside valueloop")
    return Verification(ok=True, events=count, head=Head(position=position, hash=prev), exported=last_mark)


def _truncated(mark: Head, end: int) -> str:
    return (f"event #{mark.position} was exported at {_when(mark)} but the log ends at event #{end}: "
            "the log was truncated")


def _when(mark: Head) -> str:
    return f"{mark.at:%Y-%m-%d %H:%M:%S} UTC" if mark.at else "an unknown time"


# -- exported heads -------------------------------------------------------------------------------


def heads_file(settings: Settings) -> Path:
    return settings.home / "audit" / "heads.jsonl"


def exported_heads(settings: Settings) -> list[Head]:
    """The heads exported so far, oldest first."""
    path = heads_file(settings)
    if not path.exists():
        return []
    return [_head(path, number, line) for number, line in enumerate(path.read_text().splitlines(), 1)
            if line.strip()]


def _head(path: Path, number: int, line: str) -> Head:
    try:
        return Head.model_validate_json(line)
    except ValidationError:
        raise InvalidInput(f"{path} line {number}: not an exported head; "
                           "expected JSON with position and hash") from None


def append_head(settings: Settings, head: Head) -> bool:
    """Append the head to the heads file (and the log) unless it is the last one there already."""
    known = exported_heads(settings)
    if known and (known[-1].position, known[-1].hash) == (head.position, head.hash):
        return False
    path = heads_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(head.model_copy(update={"at": utcnow()}).model_dump_json() + "\n")
    log.info("audit head: event #%d sha256:%s", head.position, head.hash)
    return True


def export_head(settings: Settings) -> Verification:
    """Check what was appended since the last exported head and, if the chain holds, export the
    new head. A broken chain is logged as an error and never exported."""
    from valueloop.store import session as open_session

    known = exported_heads(settings)
    anchor = known[-1] if known else Head(position=0, hash=GENESIS)
    with open_session(settings) as s:
        stored = s.scalar(select(AuditEvent.hash).where(AuditEvent.id == anchor.position))
        anchored = anchor.position == 0 or stored == anchor.hash
        result = _check(s, anchor, {}, anchor) if anchored else verify(s, known)
    if not result.ok:
        log.error("audit chain is broken at event #%d: %s", result.first_broken, result.problem)
    else:
        append_head(settings, result.head)
    return result


def start_head_export(settings: Settings) -> BackgroundScheduler:
    """Export the head now and every minute in the background; the caller shuts it down."""
    from valueloop.scheduling import start_background

    return start_background(settings, lambda _, s: export_head(s), "audit:export-head")
