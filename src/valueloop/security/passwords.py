"""Console passwords, hashed with argon2id by argon2-cffi; the rule a new password must meet."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from valueloop.errors import InvalidInput

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_LENGTH = 10
#: argon2 reads the whole password: a bound keeps a megabyte "password" from costing the server
MAX_LENGTH = 1024


@cache
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id with the library's current recommended parameters


def check_rule(password: str) -> None:
    """Refuse a password too short to resist guessing or too long to hash cheaply."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidInput(f"password: must be {MIN_LENGTH} to {MAX_LENGTH} characters long, "
                           f"got {len(password)}")


def hash_password(password: str) -> str:
    check_rule(password)
    return _hasher().hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches the stored hash; a user without one never matches, but the
    work is done anyway so the answer's time does not tell who has a password."""
    from argon2.exceptions import InvalidHashError, VerificationError

    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher().verify(stored or _dummy(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy() -> str:
    return _hasher().hash("no password is set for this user")
