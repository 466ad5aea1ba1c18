"""Intents: what a step is about to write outside the metadata database, recorded first.

A step that writes both an external store (a Delta commit, an MLflow run or registration, a batch
output) and valueloop's rows cannot make both happen at once. So it records an intent (``pending``,
naming the external object) and commits it on its own, writes the external object, then marks the
intent ``done`` in the same transaction as the rows that describe the object. A process killed in
between leaves a pending intent naming what may be half-made; ``valueloop doctor`` finds it and
completes or rolls it back. Nothing builds on an object whose intent is not done.

``crash_point`` is for the fault tests only: it does nothing unless the test-only environment
variable ``VALUELOOP_TEST_CRASH_AT`` names the point, and then kills the process at once.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from valueloop.config import Settings
from valueloop.errors import Conflict
from valueloop.store.models import USECASE_NAME, Base, utcnow

#: the test-only variable naming the point at which ``crash_point`` kills the process
CRASH_VARIABLE = "VALUELOOP_TEST_CRASH_AT"
PENDING, DONE, ORPHANED = "pending", "done", "orphaned"
#: the kinds of external write
DELTA_COMMIT, MLFLOW_RUN, MLFLOW_REGISTER, BATCH_OUTPUT = "delta.commit", "mlflow.run", "mlflow.register", "batch.output"
#: a pending intent older than this has lost its writer, whatever runs under its process id
STALE_SECONDS = 3600


class Intent(Base):
    """One external write: pending while it may be half-made, then done or orphaned."""

    __tablename__ = "intents"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    usecase: Mapped[str | None] = mapped_column(ForeignKey(USECASE_NAME), index=True)
    #: the external object: a Delta table's path, an MLflow run or model name, a batch output
    target: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actor: Mapped[str] = mapped_column(String(64))
    #: the process writing it, so that a doctor on the same host knows whether it still runs
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


@contextmanager
def writing(settings: Settings, kind: str, usecase: str | None, target: str, actor: str,
            **detail: Any) -> Iterator[int]:
    """A pending intent around the external write; orphaned at once if the write fails. The
    caller marks it done with ``finish`` in the transaction of the rows describing the object."""
    intent_id = begin(settings, kind, usecase, target, actor, **detail)
    try:
        yield intent_id
    except BaseException as exc:
        from valueloop.store.db import session

        with session(settings) as s:
            finish(s, intent_id, ORPHANED, f"the write failed: {type(exc).__name__}: {exc}"[:2000])
        raise


def begin(settings: Settings, kind: str, usecase: str | None, target: str, actor: str,
          **detail: Any) -> int:
    """Record a pending intent in a transaction of its own, committed before the external write;
    refused while a live process writes the same object."""
    from valueloop.store.db import session

    with session(settings) as s:
        busy = [i for i in s.scalars(select(Intent).where(Intent.status == PENDING, Intent.kind == kind,
                                                          Intent.target == target)) if writer_alive(i)]
        if busy:
            raise Conflict(f"{target}: process {busy[0].pid} on {busy[0].host} is writing it "
                           f"({kind}, since {busy[0].created_at:%Y-%m-%d %H:%M:%S} UTC); try again when it ends")
        row = Intent(kind=kind, usecase=usecase, target=target, status=PENDING, detail=detail,
                     actor=actor, host=socket.gethostname(), pid=os.getpid())
        s.add(row)
        s.flush()
        return row.id


def training_target(training_id: str) -> str:
    """What a training's intent names: its MLflow runs (tagged with the id) and its registration."""
    return f"mlflow training {training_id}"


def finish(session: Session, intent_id: int, status: str = DONE, note: str | None = None,
           **detail: Any) -> None:
    """Mark an intent done (in the transaction of the rows it describes) or orphaned."""
    row = session.get(Intent, intent_id)
    if row is None:
        raise LookupError(f"intent {intent_id} does not exist")
    row.status, row.note, row.finished_at = status, note, utcnow()
    row.detail = {**row.detail, **detail}


def for_target(session: Session, kind: str, target: str) -> Intent | None:
    return session.scalar(select(Intent).where(Intent.kind == kind, Intent.target == target))


def pending(session: Session, kind: str | None = None, usecase: str | None = None) -> list[Intent]:
    query = select(Intent).where(Intent.status == PENDING).order_by(Intent.id)
    if kind is not None:
        query = query.where(Intent.kind == kind)
    if usecase is not None:
        query = query.where(Intent.usecase == usecase)
    return list(session.scalars(query))


def writer_alive(row: Intent) -> bool:
    """Whether the process that recorded the intent may still be writing: for an hour at most
    (no write of valueloop's takes longer), and on this host only while that process runs."""
    if (utcnow() - row.created_at).total_seconds() >= STALE_SECONDS:
        return False
    return row.host != socket.gethostname() or pid_alive(row.pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def crash_point(name: str) -> None:
    """Test-only: SIGKILL this process here when ``VALUELOOP_TEST_CRASH_AT`` names the point."""
    if os.environ.get(CRASH_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
