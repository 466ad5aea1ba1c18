"""One exception hierarchy, mapped once at each boundary (CLI exit code, HTTP status).

Every message names what is wrong and, where it helps, what would be allowed instead.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping


class ValueloopError(Exception):
    """Base of every error valueloop raises on purpose."""

    http_status: int = 400
    exit_code: int = 1

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {p}" for p in self.problems)


def by_name(kind: str) -> type[ValueloopError]:
    """The error class of a name an answer or a record carries; ValueloopError for any other."""
    cls = globals().get(kind)
    return cls if isinstance(cls, type) and issubclass(cls, ValueloopError) else ValueloopError


class InvalidInput(ValueloopError):
    """Input that breaks a rule: a field, its value and the rule are named."""

    http_status = 422
    exit_code = 2


class NotInProject(InvalidInput):
    """A file the use case file names is not in the project folder (which may be the wrong one)."""


class NotFound(ValueloopError):
    http_status = 404
    exit_code = 3


class Conflict(ValueloopError):
    """The request clashes with the current state: a duplicate, an illegal transition."""

    http_status = 409
    exit_code = 4


class AuthenticationFailed(ValueloopError):
    """No valid identity: unknown, expired or revoked token, no acting user."""

    http_status = 401
    exit_code = 5


class PermissionDenied(ValueloopError):
    """The actor is known but lacks the role the action needs."""

    http_status = 403
    exit_code = 6


class InternalError(ValueloopError):
    """A failure valueloop did not expect: the server's fault, not the caller's. The client gets
    an id and no detail; the trace is in the server log under that id."""

    http_status = 500
    exit_code = 70  # EX_SOFTWARE

    def __init__(self, incident: str) -> None:
        super().__init__(f"internal error {incident}; the server log has the details under this id")
        self.incident = incident

    @classmethod
    def logged(cls, what: str, headers: Mapping[str, str]) -> InternalError:
        """Log the current exception's trace under an incident id and return the error that gives
        the client only that id: its own request id when it is a plain token (a log line holds
        no caller-made line breaks), else a new one. Every HTTP surface answers the same way."""
        given = headers.get("x-request-id", "")
        incident = given if _PLAIN_ID.fullmatch(given) else secrets.token_hex(8)
        logging.getLogger("valueloop").exception("%s failed (incident %s)", what, incident)
        return cls(incident)


_PLAIN_ID = re.compile(r"[\w.:-]{1,128}")


class GateClosed(ValueloopError):
    """A gate of the loop is not passed yet, e.g. no approved DPIA before touching data."""

    http_status = 409
    exit_code = 7


class TooLarge(InvalidInput):
    """A request body past its limit, refused before the rest of it is read."""

    http_status = 413


class UnsupportedMediaType(InvalidInput):
    """A body in a content type or encoding the route does not take."""

    http_status = 415


class TooManyRequests(ValueloopError):
    """Too many failed attempts from one client; it may try again after ``retry_after`` seconds."""

    http_status = 429
    exit_code = 8

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
