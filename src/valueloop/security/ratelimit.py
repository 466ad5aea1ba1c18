"""Failed authentications per client, counted in a moving window by the ``limits`` library."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from valueloop.errors import TooManyRequests

#: failures a client may make before it must wait; a person mistyping gets nowhere near it
FAILED_AUTHENTICATIONS = RateLimitItemPerMinute(20)


class AuthenticationThrottle:
    """Counts each client's failed sign-ins and token attempts; past the limit, the client waits.

    While a client waits, every attempt is refused, a right one too: otherwise the answer would
    still tell a right guess from a wrong one. ``storage`` is a ``limits`` storage URI: the default
    counts in this process; ``redis://…`` shares the count between a server's workers.
    """

    def __init__(self, limit: RateLimitItem = FAILED_AUTHENTICATIONS, storage: str = "memory://") -> None:
        self._limit = limit
        self._window = MovingWindowRateLimiter(storage_from_string(storage))

    def check(self, client: str) -> None:
        """Refuse with 429 while ``client`` has used up its failures; call before authenticating."""
        if not self._window.test(self._limit, client):
            reset = self._window.get_window_stats(self._limit, client).reset_time
            wait = max(1, math.ceil(reset - time.time()))
            raise TooManyRequests(f"too many failed authentications from {client} "
                                  f"(limit {self._limit}); retry in {wait} s", retry_after=wait)

    def failed(self, client: str) -> None:
        """Count one failed attempt of ``client``."""
        self._window.hit(self._limit, client)
