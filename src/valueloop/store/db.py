"""Engines and sessions for the metadata store; migrations run on first use and on upgrade."""

from __future__ import annotations

import fcntl
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from valueloop.config import Settings
from valueloop.errors import ValueloopError

MIGRATIONS = Path(__file__).parent / "migrations"
#: the revisions of the newest schema, one per branch (a test checks them against the scripts): a
#: database at them is used as it is, without importing alembic and loading every migration script
#: to learn them, which took half a second of each command's start
HEADS = frozenset({"0018"})
_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _alembic_config(connection: Connection):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _at_heads(engine: Engine) -> bool:
    """Whether the database's schema is at :data:`HEADS`, read without alembic (a fresh one is not)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as conn:
            return set(conn.scalars(text("SELECT version_num FROM alembic_version"))) == HEADS
    except SQLAlchemyError:
        return False


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revisions; a no-op when it is already there.

    Each phase keeps its own branch of migrations off the foundation, hence "heads".
    """
    if _at_heads(engine):
        return
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with exclusive(engine, "migrate"), engine.begin() as conn:
        cfg = _alembic_config(conn)
        heads = set(ScriptDirectory.from_config(cfg).get_heads())
        if set(MigrationContext.configure(conn).get_current_heads()) != heads:
            command.upgrade(cfg, "heads")


def schema_revisions(engine: Engine) -> list[str]:
    """The revisions the database is at, one per branch."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return sorted(MigrationContext.configure(conn).get_current_heads())


@contextmanager
def exclusive(engine: Engine, purpose: str) -> Iterator[None]:
    """One process at a time for ``purpose`` on this database: server workers, replicas and
    scheduler threads all start on a fresh installation at once. On a SQLite file, a lock file
    beside it; on PostgreSQL, a session advisory lock, which holds across hosts too."""
    if engine.dialect.name == "postgresql":
        key = zlib.crc32(purpose.encode())
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    with open(f"{database}.{purpose}-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def get_engine(url: str, owner_url: str = "") -> Engine:
    """One engine per URL per process, migrated on first use: as ``owner_url`` when given, which
    then grants the role of ``url`` what the server needs, and no power over the audit."""
    with _engines_lock:
        return _engines.get(url) or _new_engine(url, owner_url)


def _new_engine(url: str, owner_url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        if owner_url and owner_url != url:
            _migrate_as_owner(owner_url, engine.url.username or "")
        else:
            migrate(engine)
    except Exception as exc:  # noqa: BLE001 - any driver error means the same to the user
        engine.dispose()
        reason = str(exc).splitlines()[0]
        if "permission denied" in reason and not owner_url:
            reason += ("; the schema needs migrating by its owner: run `valueloop db migrate` with "
                       "VALUELOOP_MIGRATION_DATABASE_URL")
        raise ValueloopError(f"metadata database {engine.url!r} is not usable: {reason}") from exc
    _engines[url] = engine
    return engine


def _migrate_as_owner(owner_url: str, app_role: str) -> None:
    """Migrate as the schema's owner, then grant the server's role its rows (PostgreSQL only)."""
    owner = create_engine(owner_url)
    try:
        if owner.dialect.name != "postgresql":
            raise ValueloopError("migration_database_url: a separate owner needs PostgreSQL, "
                                 f"got {owner.dialect.name}")
        migrate(owner)
        with owner.begin() as conn:
            grant_app_role(conn, app_role)
    finally:
        owner.dispose()


def grant_app_role(conn: Connection, role: str) -> None:
    """Grant the server's role the rows it works with: on ``audit_events`` only SELECT and INSERT,
    and no DELETE of the chain head. A role that owns the table or its schema, or a superuser,
    could switch the triggers off or drop the table, and is refused."""
    q = conn.dialect.identifier_preparer.quote
    powerful = conn.execute(text(
        "SELECT r.rolsuper, pg_has_role(r.oid, c.relowner, 'USAGE'), "
        "pg_has_role(r.oid, n.nspowner, 'USAGE') "
        "FROM pg_roles r, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE r.rolname = :role AND c.oid = 'audit_events'::regclass"), {"role": role}).one_or_none()
    if powerful is None:
        raise ValueloopError(f"database_url: role {role!r} does not exist")
    if any(powerful):
        what = ("a superuser", "an owner of audit_events", "an owner of its schema")
        held = ", ".join(w for w, yes in zip(what, powerful, strict=True) if yes)
        raise ValueloopError(f"database_url: role {role!r} may alter the audit table: it is {held}; "
                             "connect the server as a role that is none of these")
    schema = q(conn.execute(text("SELECT current_schema()")).scalar_one())
    role = q(role)
    for statement in (
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_events FROM {role}",
        f"REVOKE DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_chain_head FROM {role}",
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {role}",
    ):
        conn.execute(text(statement))


@contextmanager
def session(settings: Settings) -> Iterator[Session]:
    """A unit of work: commits on success, rolls everything back on any error. The settings are
    always handed in: only the CLI and the servers' entry points read the environment."""
    engine = get_engine(settings.database_url, settings.migration_database_url)
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory.begin() as s:
        yield s
