"""Request-scoped dependencies: the settings the app was built with, one database transaction per
request, the user behind the token."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator
from sqlalchemy.orm import Session

from valueloop.config import Settings
from valueloop.errors import AuthenticationFailed
from valueloop.outcomes.users import authenticate
from valueloop.store import session

_bearer = HTTPBearer(auto_error=False, description="A token from `valueloop tokens create`.")
#: where the edge (``app.Edge``) leaves the authenticated user's name in the ASGI scope
ACTOR = "valueloop.actor"


def app_settings(request: Request) -> Settings:
    """The settings ``create_app`` was given, read once at start."""
    return request.app.state.settings


AppSettings = Annotated[Settings, Depends(app_settings)]


def db(settings: AppSettings) -> Iterator[Session]:
    with session(settings) as s:
        yield s


# scope="function": commit before the response is sent, so a client that got its 2xx reads its
# own write, and a failing commit becomes an error response instead of a lost change
DB = Annotated[Session, Depends(db, scope="function")]


def user_of(settings: Settings, token: str | None) -> str:
    """The name of the user a bearer token belongs to, checked in a transaction of its own."""
    with session(settings) as s:
        return authenticate(s, token).name


def current_user(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """The user the edge authenticated before the body was read; the bearer parameter only
    declares the scheme in the OpenAPI document."""
    actor = request.scope.get(ACTOR)
    if actor is None:  # a route the edge does not guard: fail closed
        raise AuthenticationFailed("missing bearer token: send 'Authorization: Bearer <token>'")
    return actor


Actor = Annotated[str, Depends(current_user)]


#: the largest id a row can have (PostgreSQL's integer); a larger one is a 422, not a 500
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _in_utc(value: datetime) -> datetime:
    """A time without a zone is UTC; one the store cannot hold in UTC is refused, not a 500."""
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError("must lie within the years 1 to 9999 in UTC") from None


#: a point in time a client sends: in UTC when it names no zone
Moment = Annotated[datetime, AfterValidator(_in_utc)]
