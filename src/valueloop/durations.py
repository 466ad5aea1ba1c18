"""Spans of time as people write them, ``90s``, ``15m``, ``12h``, ``30d``: one rule for the use
case file (a pydantic field type), the CLI and the data checks, so a value one accepts the
others accept too, and a refusal reads the same everywhere."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import GetCoreSchemaHandler, TypeAdapter, ValidationError
from pydantic_core import core_schema

_FORM = re.compile(r"(\d{1,12})([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: a hundred years: past it, a date plus the span leaves the calendar (and nobody means it)
LONGEST_DAYS = 36500
RULE = ("expected a duration: a whole number and one unit, s, m, h or d (such as 90s, 15m, 12h or 30d), "
        f"from 1s to {LONGEST_DAYS}d")


class Duration(str):
    """The text as written, which the file stores and messages show; ``delta`` is its length."""

    __slots__ = ()

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=int(self[:-1]) * _SECONDS[self[-1]])

    @classmethod
    def checked(cls, text: str) -> Duration:
        match = _FORM.fullmatch(text)
        if match is None or not 0 < int(match[1]) * _SECONDS[match[2]] <= LONGEST_DAYS * 86400:
            raise ValueError(RULE)
        return cls(text)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls.checked, core_schema.str_schema(), serialization=core_schema.to_string_ser_schema())


def parse_duration(text: str, field: str) -> Duration:
    """``text`` as a Duration, or InvalidInput naming ``field`` as the use case file's loader would."""
    from valueloop.errors import InvalidInput
    from valueloop.validation import describe_errors

    try:
        return TypeAdapter(Duration).validate_python(text)
    except ValidationError as exc:
        raise InvalidInput(describe_errors(exc, [field])[0]) from None
