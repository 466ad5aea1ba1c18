"""The metadata schema. Alembic migrations in ``migrations/`` create exactly these tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: SQLite keeps no time zone, PostgreSQL would shift it."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


#: what the later phases' rows reference a use case by: its name, which never changes once created
#: and is what every query and the audit name it by; the foundation's own tables use its id
USECASE_NAME = "usecases.name"


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(default=False)
    #: appointed by the admin; decides the DPIA of any use case on which the officer holds no role
    is_privacy_officer: Mapped[bool] = mapped_column(default=False)
    #: an automated principal such as ``policy:retrain``: no tokens, acts under a standing authorization
    is_system: Mapped[bool] = mapped_column(default=False)
    #: argon2id hash of the console password; None: the user signs in with a token only
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class ConsoleSession(Base):
    """A signed-in browser: the cookie holds the secret, the row its hash, so that signing out
    (or the admin revoking) ends the session on the server, not only in the browser."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: the synchronizer token every form of this session carries
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class UseCase(Base):
    __tablename__ = "usecases"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(32))
    state_reason: Mapped[str | None] = mapped_column(Text)
    spec: Mapped[dict[str, Any]]
    spec_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    members: Mapped[list[Member]] = relationship(
        back_populates="usecase", cascade="all, delete-orphan", order_by="Member.id"
    )
    cycles: Mapped[list[Cycle]] = relationship(
        back_populates="usecase", cascade="all, delete-orphan", order_by="Cycle.number"
    )
    assessments: Mapped[list[PrivacyAssessment]] = relationship(
        back_populates="usecase",
        cascade="all, delete-orphan",
        order_by="PrivacyAssessment.version",
    )


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("usecase_id", "user_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    usecase_id: Mapped[int] = mapped_column(ForeignKey("usecases.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(String(32))

    usecase: Mapped[UseCase] = relationship(back_populates="members")
    user: Mapped[User] = relationship()


class Cycle(Base):
    """One turn of the loop, from development to the business decision at review."""

    __tablename__ = "cycles"
    __table_args__ = (UniqueConstraint("usecase_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    usecase_id: Mapped[int] = mapped_column(ForeignKey("usecases.id"))
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    kpi_outcomes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    decision: Mapped[str | None] = mapped_column(String(32))
    decision_comment: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(64))

    usecase: Mapped[UseCase] = relationship(back_populates="cycles")


class PrivacyAssessment(Base):
    """One version of a use case's DPIA and the privacy officer's decision on it."""

    __tablename__ = "privacy_assessments"
    __table_args__ = (UniqueConstraint("usecase_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    usecase_id: Mapped[int] = mapped_column(ForeignKey("usecases.id"))
    version: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict[str, Any]]
    content_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    submitted_by: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]
    conditions: Mapped[list[Any]] = mapped_column(default=list)
    comment: Mapped[str | None] = mapped_column(Text)

    usecase: Mapped[UseCase] = relationship(back_populates="assessments")


class AuditEvent(Base):
    """Append-only: database triggers refuse UPDATE, DELETE and TRUNCATE. Tamper-evident: each
    event is chained to the one before by ``prev_hash``; ``hash`` covers its content and that link."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(128))
    usecase: Mapped[str | None] = mapped_column(String(64), index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The one row naming the newest audit event and its hash. Appending updates it first, which
    takes its row lock: concurrent appends queue up instead of forking the chain."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    position: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
