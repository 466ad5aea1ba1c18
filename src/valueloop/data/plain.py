"""Values from DuckDB as JSON can hold them: the report and profile are stored as JSON."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb


def plain(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def rows(cursor: Any) -> list[dict[str, Any]]:
    """A DuckDB result as a list of {column: plain value}."""
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, (plain(v) for v in row), strict=True)) for row in cursor.fetchall()]


def scan(con: duckdb.DuckDBPyConnection, table: str, *parts: list[str]) -> list[list[Any]]:
    """Each part's aggregates over ``table``, all from one SELECT: one pass over the data for
    the checks and the profile together, however many aggregates each asks for."""
    flat = [expression for part in parts for expression in part]
    values = iter(con.execute(f"SELECT {', '.join(flat)} FROM {table}").fetchone() if flat else ())
    return [[next(values) for _ in part] for part in parts]
