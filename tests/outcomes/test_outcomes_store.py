"""Migrations: a fresh database gets every table, migrating again changes nothing, and the
migrations match the models, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.config import Config
from outcomes.support import add_people, db_state  # db_state's module imports every phase's tables
from sqlalchemy import create_engine, inspect

from valueloop.store import get_engine, migrate
from valueloop.store.db import MIGRATIONS
from valueloop.store.models import Base

FOUNDATION = {"users", "api_tokens", "usecases", "members", "cycles", "privacy_assessments", "audit_events"}


def _heads() -> set[str]:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return set(ScriptDirectory.from_config(cfg).get_heads())


def test_a_fresh_database_gets_every_table_at_every_head(db_settings):
    engine = get_engine(db_settings.database_url)
    assert FOUNDATION | {"alembic_version"} <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        assert set(MigrationContext.configure(conn).get_current_heads()) == _heads()


def test_migrating_again_is_a_no_op(db_settings):
    add_people(db_settings)
    before = db_state(db_settings)
    tables = set(inspect(get_engine(db_settings.database_url)).get_table_names())
    migrate(get_engine(db_settings.database_url))
    fresh = create_engine(db_settings.database_url)  # as a new process would
    try:
        migrate(fresh)
        assert set(inspect(fresh).get_table_names()) == tables
    finally:
        fresh.dispose()
    assert db_state(db_settings) == before


def test_the_migrations_match_the_models(db_settings):
    """What autogenerate would write for every phase's tables: nothing."""
    assert FOUNDATION < set(Base.metadata.tables) and len(Base.metadata.tables) >= 15
    with get_engine(db_settings.database_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
