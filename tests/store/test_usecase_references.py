"""Every phase's rows belong to a use case that exists: the database refuses any other, on SQLite
and on PostgreSQL, whichever code writes them."""

from __future__ import annotations

import pytest
from rows import USECASE_TABLES, minimal_row
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from valueloop.store import get_engine
from valueloop.store.models import Base

LATER_PHASES = {"training_runs", "model_versions", "batch_jobs", "monitor_results", "alerts", "kpi_values",
                "retrain_requests"}


def test_every_usecase_column_references_the_usecases(db_settings):
    assert LATER_PHASES <= set(USECASE_TABLES)
    schema = inspect(get_engine(db_settings.database_url))
    unreferenced = [t for t in USECASE_TABLES
                    if {"usecases"} != {fk["referred_table"] for fk in schema.get_foreign_keys(t)
                                        if fk["constrained_columns"] == ["usecase"]}]
    assert unreferenced == []


@pytest.mark.parametrize("table", sorted(LATER_PHASES))
def test_a_row_for_an_unknown_usecase_is_refused(db_settings, approved_usecase, table):
    name, _ = approved_usecase(db_settings)
    engine = get_engine(db_settings.database_url)
    target = Base.metadata.tables[table]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(target.insert(), minimal_row(target, "nobody-made-this"))
    with engine.begin() as conn:  # the same row for the real use case is fine: the key is what refused
        conn.execute(target.insert(), minimal_row(target, name))
