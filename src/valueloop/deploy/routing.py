"""Which model answers a request: the champion, or the challenger for a canary share.

With a request key (header ``X-Request-Key``) the choice is sticky: the key's hash, not chance,
decides, so one customer keeps seeing one model while the share stays the same.
"""

from __future__ import annotations

import hashlib
import random

_SPAN = float(1 << 64)


def to_challenger(share: float, key: str | None = None) -> bool:
    if share <= 0:
        return False
    if share >= 1:
        return True
    if key is None:
        return random.random() < share
    point = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / _SPAN
    return point < share
