"""A minimal row for any table of the models, naming a given use case: what a test inserts to see
the schema, not the service layer, accept or refuse it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import outcomes.support  # noqa: F401 - imports every phase's tables into the metadata
from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Table, Text

from valueloop.store.models import Base

#: the tables whose rows belong to a use case named by a ``usecase`` column; the audit names one
#: too, as a record of what was asked, and keeps no foreign key (an event is never altered)
USECASE_TABLES = sorted(t.name for t in Base.metadata.sorted_tables
                        if "usecase" in t.columns and t.name != "audit_events")


def minimal_row(table: Table, usecase: str) -> dict[str, Any]:
    """Every required column of ``table`` filled with a plain value of its type."""
    row: dict[str, Any] = {}
    for column in table.columns:
        if column.nullable or column.default is not None or column.server_default is not None or (
                column.primary_key and column.autoincrement is not False and isinstance(column.type, Integer)):
            continue
        row[column.name] = _value(column.type)
    return {**row, "usecase": usecase}


def _value(type_: Any) -> Any:
    if isinstance(type_, JSON):
        return {}
    if isinstance(type_, Boolean):
        return False
    if isinstance(type_, Integer):
        return 1
    if isinstance(type_, Float):
        return 0.5
    if isinstance(type_, String | Text):
        return "x"
    if isinstance(type_, DateTime) or isinstance(getattr(type_, "impl", None), DateTime):
        return datetime(2025, 3, 1, tzinfo=UTC)
    raise TypeError(f"no plain value for a column of type {type_!r}")
