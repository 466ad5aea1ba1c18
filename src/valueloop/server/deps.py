"""Request-scoped dependencies: one database transaction per request, the user behind the token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from valueloop.outcomes.users import authenticate
from valueloop.store import session

_bearer = HTTPBearer(auto_error=False, description="A token from `valueloop tokens create`.")


def db() -> Iterator[Session]:
    with session() as s:
        yield s


# scope="function": commit before the response is sent, so a client that got its 2xx reads its
# own write, and a failing commit becomes an error response instead of a lost change
DB = Annotated[Session, Depends(db, scope="function")]


def current_user(
    s: DB, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    return authenticate(s, credentials.credentials if credentials else None).name


Actor = Annotated[str, Depends(current_user)]
