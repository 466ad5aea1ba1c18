"""Server mode: the command line as a client of the control plane.

In local mode (the default) whoever can read the home folder holds everything, its database and
pseudonym key, and ``--as`` names the actor for the record. In server mode, with
``VALUELOOP_SERVER_URL`` and ``VALUELOOP_TOKEN`` or after ``valueloop login``, a command calls its
route with the token, acts as the token's user, and never opens the local home: the database
credentials and the key exist only on the server.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

import typer
from typer.core import TyperGroup

from valueloop import errors
from valueloop.cli._common import actor
from valueloop.errors import AuthenticationFailed, InvalidInput, ValueloopError

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: a command may wait this long for its answer: retraining runs while the client waits
READ_TIMEOUT_SECONDS = 3600.0


@dataclass(frozen=True)
class Server:
    """The control plane a command calls, and the token that is the caller's identity."""

    url: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class Route:
    """One control-plane route with what a command sends it."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None


def credentials_path() -> Path:
    """Where ``valueloop login`` keeps the URL and token, readable by the user only."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "valueloop" / "credentials"


def keep_credentials(target: Server) -> Path:
    """Write the login file, readable and writable by its owner only, as ssh keeps a key."""
    path = credentials_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file that was there keeps its old mode otherwise
    with os.fdopen(fd, "w") as file:
        json.dump({"url": target.url, "token": target.token}, file)
    return path


@cache
def server() -> Server | None:
    """The control plane of server mode, or None for local mode: the environment's
    ``VALUELOOP_SERVER_URL`` and ``VALUELOOP_TOKEN`` (both or neither), else the login file."""
    url, token = os.environ.get("VALUELOOP_SERVER_URL", ""), os.environ.get("VALUELOOP_TOKEN", "")
    if url or token:
        if not (url and token):
            missing = "VALUELOOP_TOKEN" if url else "VALUELOOP_SERVER_URL"
            raise AuthenticationFailed(f"{missing} is not set: server mode needs both VALUELOOP_SERVER_URL "
                                       "and VALUELOOP_TOKEN; unset both for local mode")
        return Server(url.rstrip("/"), token)
    path = credentials_path()
    if not path.exists():
        return None
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuthenticationFailed(f"{path}: readable by others; `chmod 600 {path}` or `valueloop login` again")
    try:
        stored = json.loads(path.read_text())
        return Server(stored["url"], stored["token"])
    except (ValueError, KeyError, TypeError):
        raise AuthenticationFailed(f"{path}: not a credentials file; `valueloop login URL` again") from None


def segment(value: str | int) -> str:
    """A name as one path segment of a route: ``a/../b`` cannot reach another route."""
    from urllib.parse import quote

    return quote(str(value), safe="")


def served(command: F) -> F:
    """Mark a command that works in server mode. Every other command is refused there before it
    runs: a command the server cannot run would otherwise open the client's own home."""
    command.served = True  # type: ignore[attr-defined]
    return command


def refuse_local(root: TyperGroup, args: Sequence[str]) -> None:
    """In server mode, refuse a named actor and any command that runs only in local mode.

    ``args`` have ``--as`` hoisted to the front, as the root command parses them."""
    if server() is None:
        return
    named, args = _split_actor(list(args))
    for origin, name in (("--as ", named), ("VALUELOOP_USER=", os.environ.get("VALUELOOP_USER"))):
        if name:
            raise AuthenticationFailed(
                f"{origin}{name}: in server mode you act as your token's user; drop it, or leave server "
                "mode (`valueloop logout`, unset VALUELOOP_SERVER_URL) to name the actor on a local home")
    command, rest = _resolve(root, args)
    if not _served(command) and "--help" not in rest:
        named_command = " ".join(args[: len(args) - len(rest)])
        raise InvalidInput(f"{named_command}: has no control-plane route; it runs only in local mode, on "
                           "the server's machine (unset VALUELOOP_SERVER_URL there)")


def _split_actor(args: list[str]) -> tuple[str | None, list[str]]:
    """The hoisted ``--as USER`` or ``--as=USER`` and the arguments after it."""
    if args[:1] == ["--as"] and len(args) > 1:
        return args[1], args[2:]
    if args and args[0].startswith("--as="):
        return args[0].removeprefix("--as="), args[1:]
    return None, args


def _resolve(root: TyperGroup, args: list[str]) -> tuple[Any, list[str]]:
    """The (sub)command ``args`` name, as the command line resolves it, and the arguments left."""
    command: Any = root
    while isinstance(command, TyperGroup) and args and args[0] in command.commands:
        command, args = command.commands[args[0]], args[1:]
    return command, args


def _served(command: Any) -> bool:
    """A group (its help, or its default command) is served when every command in it is."""
    if isinstance(command, TyperGroup):
        return all(_served(c) for c in command.commands.values())
    return getattr(command.callback, "served", False)


def request(route: Route, target: Server | None = None) -> httpx.Response:
    """Call ``route`` on ``target`` (default: server mode's) with its token; an error answer
    raises the same error as the local command."""
    import httpx

    target = target or server()
    assert target is not None, "request() is for server mode"
    params = {k: v for k, v in (route.params or {}).items() if v is not None}  # None: not sent
    try:
        response = httpx.request(route.method, target.url + route.path, json=route.json, params=params,
                                 headers={"Authorization": f"Bearer {target.token}"},
                                 timeout=httpx.Timeout(30.0, read=READ_TIMEOUT_SECONDS))
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ValueloopError(f"control plane {target.url}: no answer ({exc})") from None
    if response.is_error:
        raise _error_of(response)
    return response


def _error_of(response: httpx.Response) -> ValueloopError:
    """The exception the control plane mapped to ``{"error": {"type", "message", "problems"}}``."""
    try:
        error = response.json()["error"]
        kind, message, problems = error["type"], error["message"], error.get("problems") or []
    except (ValueError, KeyError, TypeError):
        return ValueloopError(f"control plane answered {response.status_code} {response.reason_phrase}")
    cls = errors.by_name(kind)
    if cls is errors.TooManyRequests:
        return cls(message, retry_after=int(response.headers.get("Retry-After", "1")))
    return cls(message, problems=problems)


def answer(ctx: typer.Context, route: Route, into: Any, local: Callable[[str | None], T]) -> T:
    """``local(acting user)`` in local mode; in server mode ``route``'s answer read as ``into``,
    the type ``local`` returns, so a command prints the same either way."""
    if server() is None:
        return local(actor(ctx))
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(into).validate_json(request(route).content)
    except ValidationError as exc:
        raise ValueloopError(f"control plane: {route.method} {route.path} answered what this client cannot "
                             f"read ({exc.error_count()} problem(s)); are client and server the same "
                             "valueloop version?") from None


def call(ctx: typer.Context, route: Route, service: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``service(session, acting user, *args, **kwargs)`` in a local transaction, or ``route``
    on the control plane, which calls the same service for the token's user."""

    def local(who: str | None) -> T:
        from valueloop.config import load_settings
        from valueloop.store import session

        with session(load_settings()) as s:
            return service(s, who, *args, **kwargs)

    return answer(ctx, route, get_type_hints(service)["return"], local)
