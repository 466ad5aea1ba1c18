"""Users, the acting user, and API tokens (shown once, stored as a SHA-256 hash)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound, PermissionDenied
from valueloop.outcomes import audit
from valueloop.outcomes.roles import Action, require
from valueloop.store.models import ApiToken, User, utcnow

TOKEN_PREFIX = "vl_"
#: names of automated principals; a person's name never has a colon (USER_NAME_RULE)
SYSTEM_PREFIX = "policy:"
USER_NAME_RULE = r"^[a-z][a-z0-9._-]{0,63}$"


class UserView(BaseModel):
    name: str
    email: str | None = Field(description="shown to the admin and to the user themself only")
    is_admin: bool
    is_privacy_officer: bool
    has_password: bool = Field(False, description="may sign in to the console with a password")
    created_at: datetime


class NewUser(BaseModel):
    name: str = Field(pattern=USER_NAME_RULE)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    is_admin: bool = False
    is_privacy_officer: bool = Field(False, description="appointed to decide DPIAs; never an admin too")


class TokenView(BaseModel):
    id: int
    user: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= utcnow():
            return "expired"
        return "active"


class IssuedToken(TokenView):
    token: str = Field(description="the secret; shown this once and never again")


def user_view(user: User) -> UserView:
    return UserView.model_validate(user, from_attributes=True).model_copy(
        update={"has_password": user.password_hash is not None})


def _token_view(token: ApiToken) -> TokenView:
    return TokenView(
        id=token.id, user=token.user.name, name=token.name, prefix=token.prefix,
        created_at=token.created_at, expires_at=token.expires_at, revoked_at=token.revoked_at,
    )


def get_user(session: Session, name: str | None) -> User:
    """The acting user, or a clear error naming what is missing."""
    if not name:
        raise AuthenticationFailed("no acting user: pass --as USER or set VALUELOOP_USER")
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        known = ", ".join(session.scalars(select(User.name).order_by(User.name))) or "none yet"
        raise AuthenticationFailed(f"unknown user '{name}'; known users: {known}")
    return user


def add_user(session: Session, actor: str | None, new: NewUser) -> UserView:
    """Add a user. The very first user needs no actor and becomes an admin (bootstrap)."""
    first = session.scalar(select(User.id).limit(1)) is None
    if first:
        actor_name = new.name
        new = new.model_copy(update={"is_admin": True})
    else:
        acting = get_user(session, actor)
        require(session, acting, Action.administer)
        actor_name = acting.name
    if session.scalar(select(User.id).where(User.name == new.name)) is not None:
        raise Conflict(f"user '{new.name}' already exists")
    if new.is_admin and new.is_privacy_officer:
        raise InvalidInput(f"{new.name}: an admin is never a privacy officer (the admin decides nothing)")
    user = User(name=new.name, email=new.email, is_admin=new.is_admin,
                is_privacy_officer=new.is_privacy_officer)
    session.add(user)
    session.flush()
    audit.record(session, actor_name, "user.add", "user", new.name, after=new.model_dump())
    return user_view(user)


def list_users(session: Session, actor: str | None) -> list[UserView]:
    """Every person; e-mail addresses only for the admin (and each user's own)."""
    acting = get_user(session, actor)
    people = session.scalars(select(User).where(User.is_system.is_(False)).order_by(User.name))
    return [user_view(u) if acting.is_admin or u.id == acting.id
            else user_view(u).model_copy(update={"email": None}) for u in people]


def appoint(session: Session, actor: str | None, name: str, *, privacy_officer: bool) -> UserView:
    """Appoint (or relieve) a privacy officer: the admin's act, never on their own account."""
    acting = get_user(session, actor)
    require(session, acting, Action.administer)
    user = get_user(session, name)
    if user.id == acting.id:
        raise PermissionDenied(f"{acting.name} may not appoint their own account")
    if privacy_officer and user.is_admin:
        raise InvalidInput(f"{name}: an admin is never a privacy officer (the admin decides nothing)")
    if user.is_privacy_officer != privacy_officer:
        user.is_privacy_officer = privacy_officer
        audit.record(session, acting.name, "user.appoint" if privacy_officer else "user.relieve", "user",
                     name, before={"privacy_officer": not privacy_officer},
                     after={"privacy_officer": privacy_officer})
    return user_view(user)


def set_password(session: Session, actor: str | None, name: str, password: str) -> UserView:
    """Set a user's console password: their own, or anyone's initial one by the admin."""
    from valueloop.security.passwords import hash_password

    acting = get_user(session, actor)
    user = get_user(session, name)
    if user.id != acting.id:
        require(session, acting, Action.administer)
    if user.is_system:
        raise PermissionDenied(f"{user.name} is an automated principal and never signs in")
    user.password_hash = hash_password(password)
    audit.record(session, acting.name, "user.password", "user", user.name)
    return user_view(user)


def system_user(session: Session, name: str) -> User:
    """The principal an automated step acts as (``policy:retrain``); created on first use, it
    holds no token and cannot be named with ``--as``."""
    assert name.startswith(SYSTEM_PREFIX)
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name, is_system=True)
        session.add(user)
        session.flush()
    return user


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session,
    actor: str | None,
    name: str = "default",
    *,
    for_user: str | None = None,
    expires_in: timedelta | None = None,
) -> IssuedToken:
    """Issue a token for the actor, or for another user when the actor is an admin."""
    acting = get_user(session, actor)
    owner = acting
    if for_user and for_user != acting.name:
        # a token is an identity: whoever holds another's token acts as them, the admin included
        raise PermissionDenied(f"{acting.name} may issue tokens for their own account only; "
                               f"{for_user} creates their own with `valueloop tokens create`")
    if acting.is_system:
        raise PermissionDenied(f"{acting.name} is an automated principal and holds no token")
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidInput(f"expires_in: must be positive, got {expires_in}")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user=owner,
        name=name,
        token_hash=_hash(secret),
        prefix=secret[:10],
        expires_at=utcnow() + expires_in if expires_in else None,
    )
    session.add(token)
    session.flush()
    audit.record(
        session, acting.name, "token.create", "token", token.id,
        after={"user": owner.name, "name": name, "prefix": token.prefix,
               "expires_at": token.expires_at.isoformat() if token.expires_at else None},
    )
    return IssuedToken(**_token_view(token).model_dump(), token=secret)


def list_tokens(session: Session, actor: str | None, *, every_user: bool = False) -> list[TokenView]:
    acting = get_user(session, actor)
    query = select(ApiToken).order_by(ApiToken.id)
    if every_user:
        require(session, acting, Action.administer)
    else:
        query = query.where(ApiToken.user_id == acting.id)
    return [_token_view(t) for t in session.scalars(query)]


def revoke_token(session: Session, actor: str | None, token_id: int) -> TokenView:
    acting = get_user(session, actor)
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"token {token_id}: no such token")
    if token.user_id != acting.id:
        require(session, acting, Action.administer)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(session, acting.name, "token.revoke", "token", token.id,
                     before={"status": "active"}, after={"status": "revoked"})
    return _token_view(token)


def authenticate(session: Session, secret: str | None) -> User:
    """The user a bearer token belongs to; refuses missing, unknown, expired and revoked tokens."""
    if not secret:
        raise AuthenticationFailed("missing bearer token: send 'Authorization: Bearer <token>'")
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(secret)))
    if token is None:
        raise AuthenticationFailed("unknown token")
    if token.revoked_at is not None:
        raise AuthenticationFailed(f"token {token.prefix}… was revoked at {token.revoked_at:%Y-%m-%d %H:%M} UTC")
    if token.expires_at is not None and token.expires_at <= utcnow():
        raise AuthenticationFailed(f"token {token.prefix}… expired at {token.expires_at:%Y-%m-%d %H:%M} UTC")
    return token.user
