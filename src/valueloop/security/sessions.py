"""Console sessions: a random secret in the browser's cookie, its hash and expiry in the database,
so that signing out ends the session on the server and a stolen cookie dies with it."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.errors import AuthenticationFailed
from valueloop.outcomes import audit
from valueloop.outcomes.users import authenticate, get_user
from valueloop.security.passwords import verify_password
from valueloop.store.models import ConsoleSession, utcnow

#: a working day; after it the browser signs in again
LIFETIME = timedelta(hours=8)


class Started(BaseModel):
    """A new session: the secret goes into the cookie and is never stored."""

    user: str
    secret: str
    csrf_token: str


class Signed(BaseModel):
    """The user behind a live session and the CSRF token its forms carry."""

    user: str
    csrf_token: str
    session_id: int


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def sign_in(session: Session, *, name: str = "", password: str = "", token: str = "") -> Started:
    """Start a session for a user's password, or for an API token (then the token's user)."""
    if token:
        user = authenticate(session, token)
        how = "token"
    else:
        user = get_user(session, name) if name else None
        stored = user.password_hash if user is not None and not user.is_system else None
        if not verify_password(stored, password) or user is None:
            raise AuthenticationFailed("sign-in failed: unknown user or wrong password")
        how = "password"
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    row = ConsoleSession(user_id=user.id, secret_hash=_hash(secret), csrf_token=csrf,
                         expires_at=utcnow() + LIFETIME)
    session.add(row)
    session.flush()
    audit.record(session, user.name, "session.start", "session", row.id, after={"with": how})
    return Started(user=user.name, secret=secret, csrf_token=csrf)


def signed_in(session: Session, secret: str) -> Signed:
    """The live session a cookie's secret belongs to; refuses unknown, ended and expired ones."""
    row = session.scalar(select(ConsoleSession).where(ConsoleSession.secret_hash == _hash(secret)))
    if row is None or row.ended_at is not None or row.expires_at <= utcnow():
        raise AuthenticationFailed("not signed in, or the session ended: sign in again")
    return Signed(user=row.user.name, csrf_token=row.csrf_token, session_id=row.id)


def sign_out(session: Session, secret: str) -> None:
    """End the session on the server: the cookie, if kept, opens nothing any more."""
    row = session.scalar(select(ConsoleSession).where(ConsoleSession.secret_hash == _hash(secret)))
    if row is None or row.ended_at is not None:
        return
    row.ended_at = utcnow()
    audit.record(session, row.user.name, "session.end", "session", row.id)
