"""The metadata store: SQLAlchemy models, Alembic migrations, sessions."""

from valueloop.store.db import get_engine, migrate, session

__all__ = ["get_engine", "migrate", "session"]
