"""HTTP routes for users, tokens and the audit log."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from valueloop.outcomes import audit, users
from valueloop.server.deps import DB, Actor, AppSettings, Moment, RowId

router = APIRouter(prefix="/api")


class NewToken(BaseModel):
    name: str = "default"
    user: str | None = Field(default=None, description="refused unless it names the caller: a token is "
                             "its holder's identity, issued to no one else, not even by the admin")
    expires_in_seconds: int | None = Field(default=None, gt=0, le=10 * 366 * 86400,
                                           description="at most ten years")


@router.get("/users", tags=["users"])
def list_users(s: DB, actor: Actor) -> list[users.UserView]:
    return users.list_users(s, actor)


class Appointment(BaseModel):
    privacy_officer: bool = Field(description="true appoints a privacy officer, false relieves them")


@router.put("/users/{name}/appointment", tags=["users"])
def appoint(name: str, body: Appointment, s: DB, actor: Actor) -> users.UserView:
    return users.appoint(s, actor, name, privacy_officer=body.privacy_officer)


class NewPassword(BaseModel):
    password: str = Field(description="the console password; at least 10 characters")


@router.put("/users/{name}/password", tags=["users"])
def set_password(name: str, body: NewPassword, s: DB, actor: Actor) -> users.UserView:
    """Set your own console password, or, as the admin, anyone's initial one."""
    return users.set_password(s, actor, name, body.password)


@router.post("/users", tags=["users"], status_code=201)
def add_user(body: users.NewUser, s: DB, actor: Actor) -> users.UserView:
    return users.add_user(s, actor, body)


@router.get("/me", tags=["users"])
def me(s: DB, actor: Actor) -> users.UserView:
    return users.user_view(users.get_user(s, actor))


@router.post("/tokens", tags=["tokens"], status_code=201)
def create_token(body: NewToken, s: DB, actor: Actor) -> users.IssuedToken:
    ttl = timedelta(seconds=body.expires_in_seconds) if body.expires_in_seconds else None
    return users.create_token(s, actor, body.name, for_user=body.user, expires_in=ttl)


@router.get("/tokens", tags=["tokens"])
def list_tokens(s: DB, actor: Actor, every_user: bool = Query(False, alias="all")) -> list[users.TokenView]:
    return users.list_tokens(s, actor, every_user=every_user)


@router.delete("/tokens/{token_id}", tags=["tokens"])
def revoke_token(token_id: RowId, s: DB, actor: Actor) -> users.TokenView:
    return users.revoke_token(s, actor, token_id)


@router.get("/audit", tags=["audit"])
def audit_log(
    s: DB,
    actor: Actor,
    usecase: str | None = None,
    by: str | None = Query(None, alias="actor"),
    action: str | None = None,
    since: Moment | None = None,
    until: Moment | None = Query(None, description="events before this time"),
    limit: int | None = Query(None, gt=0),
) -> list[audit.AuditEntry]:
    """What the caller did and the trail of the use cases they may view; the admin sees all."""
    return audit.trail(s, actor, usecase=usecase, actor=by, action=action, since=since, limit=limit,
                       until=until)


@router.get("/audit/verify", tags=["audit"])
def verify_audit(s: DB, actor: Actor, settings: AppSettings) -> audit.Verification:
    """Check the hash chain and the heads the server exported; ``ok`` is false when it is broken."""
    users.get_user(s, actor)
    return audit.verify(s, audit.exported_heads(settings))
