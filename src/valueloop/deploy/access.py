"""Who calls serving, and what they may see: bearer tokens checked once a second, not per request.

A token's check (its user, and the roles the user holds on each use case served at the time) is
kept in a bounded TTL cache for ``ttl`` seconds: a revoked token stops working within ``ttl``,
and the hot path makes at most one round of queries per token per ``ttl``. Requests that carry
the same unchecked token wait for one check instead of each querying the database. A client whose
tokens keep failing is throttled before the database is asked (429, see
:class:`~valueloop.security.ratelimit.AuthenticationThrottle`).

Roles come from :func:`valueloop.outcomes.roles.roles_of` and are judged by its one matrix,
``PERMISSIONS``. A use case on which the caller may not even view is treated as one that does
not exist: a 404 that names only what the caller may call, never a 403 that confirms a name.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from cachetools import TTLCache

from valueloop.config import Settings
from valueloop.errors import AuthenticationFailed, NotFound, PermissionDenied
from valueloop.outcomes.roles import PERMISSIONS, Action, Role
from valueloop.security.ratelimit import AuthenticationThrottle

#: how many checked tokens are remembered at most
CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Caller:
    """An authenticated user and their roles on the use cases served when the token was checked."""

    name: str
    roles: Mapping[str, frozenset[Role]] = field(default_factory=dict)
    #: serving without authentication (``--no-auth``): anyone may do anything
    unrestricted: bool = False

    def held(self, usecase: str) -> frozenset[Role]:
        return frozenset(Role) if self.unrestricted else self.roles.get(usecase, frozenset())

    def may(self, action: Action, usecase: str) -> bool:
        return bool(PERMISSIONS[action] & self.held(usecase))

    def visible(self, usecases: Iterable[str]) -> list[str]:
        """The use cases among ``usecases`` the caller may see, sorted."""
        return sorted(u for u in usecases if self.may(Action.view, u))


ANONYMOUS = Caller(name="anonymous", unrestricted=True)


def not_served(caller: Caller, usecase: str, served: Iterable[str]) -> NotFound:
    """The 404 of a model that is not served or not the caller's, naming only the caller's."""
    return NotFound(f"model '{usecase[:64]}' is not served (no champion); served to {caller.name}: "
                    f"{', '.join(caller.visible(served)) or 'none'}")


def require(caller: Caller, held: frozenset[Role], action: Action, usecase: str, served: Iterable[str]) -> None:
    """404 unless the caller may view the use case, 403 naming the roles that would be allowed
    when they may view it but not do ``action``."""
    if not held & PERMISSIONS[Action.view]:
        raise not_served(caller, usecase, served)
    if not held & PERMISSIONS[action]:
        raise PermissionDenied(
            f"{caller.name} may not {action.value.replace('_', ' ')} on use case '{usecase}': requires role "
            f"{' or '.join(sorted(PERMISSIONS[action]))}; {caller.name} has {', '.join(sorted(held))}")


def bearer(header: str) -> str:
    """The token of an ``Authorization`` header ("" when absent), or 401."""
    scheme, _, token = header.partition(" ")
    if not header or not token.strip():
        raise AuthenticationFailed("missing bearer token: send 'Authorization: Bearer <token>'")
    if scheme.lower() != "bearer":
        raise AuthenticationFailed("authorization: expected 'Bearer <token>'")
    return token.strip()


class Access:
    """Checks bearer tokens against the users of valueloop's database, remembered ``ttl`` seconds;
    or, in a bundle (which has no user database), against the one ``token`` it was given."""

    def __init__(self, settings: Settings, enabled: bool, ttl: float, token: str | None = None) -> None:
        self.settings, self.enabled, self.token = settings, enabled, token
        self._checked: TTLCache[str, Caller] = TTLCache(maxsize=CACHE_SIZE, ttl=ttl)
        self._checking: dict[str, asyncio.Future[Caller]] = {}
        self.throttle = AuthenticationThrottle()

    def _check(self, token: str, served: list[str]) -> Caller:
        from sqlalchemy import select

        from valueloop.outcomes.roles import roles_of
        from valueloop.outcomes.users import authenticate
        from valueloop.store import session
        from valueloop.store.models import UseCase

        with session(self.settings) as s:
            user = authenticate(s, token)
            usecases = s.scalars(select(UseCase).where(UseCase.name.in_(served))) if served else []
            held = {u.name: frozenset(roles_of(s, user, u)) for u in usecases}
            return Caller(user.name, {name: held.get(name, frozenset()) for name in served})

    async def caller(self, header: str, served: Collection[str], client: str) -> Caller:
        """The caller a request's ``Authorization`` header names; 401 for none or a bad one, 429
        while ``client`` (its address) is throttled. A use case served since the token's check
        makes it checked again."""
        if not self.enabled:
            return ANONYMOUS
        token = bearer(header)
        if self.token is not None:
            return self._given(token, client)
        found = self._checked.get(token)
        if found is not None and all(u in found.roles for u in served):
            return found
        checking = self._checking.get(token)
        if checking is None:
            self.throttle.check(client)
            checking = asyncio.ensure_future(asyncio.to_thread(self._check, token, list(served)))
            self._checking[token] = checking
            checking.add_done_callback(lambda done: self._remember(token, done))
        try:
            return await asyncio.shield(checking)
        except AuthenticationFailed:
            self.throttle.failed(client)
            raise

    def _given(self, token: str, client: str) -> Caller:
        """The bundle's caller: whoever holds its token may do anything it serves."""
        assert self.token is not None
        self.throttle.check(client)
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            self.throttle.failed(client)
            raise AuthenticationFailed("invalid token: send the bundle's token (VALUELOOP_BUNDLE_TOKEN)")
        return Caller(name="bundle", unrestricted=True)

    def _remember(self, token: str, done: asyncio.Future[Caller]) -> None:
        self._checking.pop(token, None)
        if not done.cancelled() and done.exception() is None:
            self._checked[token] = done.result()

    async def roles(self, caller: Caller, usecase: str) -> frozenset[Role]:
        """The caller's roles on any use case, served or not (from the database when not)."""
        if caller.unrestricted or usecase in caller.roles:
            return caller.held(usecase)
        return await asyncio.to_thread(self._roles, caller.name, usecase)

    def _roles(self, name: str, usecase: str) -> frozenset[Role]:
        from sqlalchemy import select

        from valueloop.outcomes.roles import roles_of
        from valueloop.outcomes.users import get_user
        from valueloop.store import session
        from valueloop.store.models import UseCase

        with session(self.settings) as s:
            found = s.scalar(select(UseCase).where(UseCase.name == usecase))
            return frozenset(roles_of(s, get_user(s, name), found)) if found is not None else frozenset()
