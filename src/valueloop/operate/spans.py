"""Spans of time as the operate section writes them: ``90s``, ``15m``, ``1h``, ``30d``."""

from __future__ import annotations

from datetime import timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def span(text: str) -> timedelta:
    """The schema has checked the pattern (digits and one unit) before anything calls this."""
    return timedelta(**{_UNITS[text[-1]]: int(text[:-1])})
