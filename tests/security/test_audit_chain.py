"""The audit is tamper-evident (issue 14, attack 7): each event carries the hash of the one before
and of its own content, ``valueloop audit verify`` names the first broken event, exported heads
reveal a truncation, and on PostgreSQL the server's role can neither disable the audit's triggers
nor truncate it. Reads of the trail need an acting user and are filtered by membership."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from outcomes.support import add_people, formulated
from server.conftest import server  # noqa: F401 - the real-uvicorn fixture of the API tests
from sqlalchemy import Connection, MetaData, Table, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from valueloop.config import Settings, load_settings
from valueloop.errors import ValueloopError
from valueloop.outcomes import audit, users
from valueloop.store import get_engine, session
from valueloop.store.db import _alembic_config

Tamper = Callable[[Connection, Table], None]


@contextmanager
def _as_owner(settings: Settings) -> Iterator[tuple[Connection, Table]]:
    """What the database's owner can do: switch the append-only triggers off, change the audit
    table, and switch them on again (SQLite: drop and recreate; PostgreSQL: a superuser session
    whose triggers do not fire)."""
    engine = create_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                triggers = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")).all()
                for name, _ in triggers:
                    conn.execute(text(f"DROP TRIGGER {name}"))
            else:
                conn.execute(text("SET LOCAL session_replication_role = replica"))
            yield conn, Table("audit_events", MetaData(), autoload_with=conn)
            if conn.dialect.name == "sqlite":
                for _, sql in triggers:
                    conn.execute(text(sql))
    finally:
        engine.dispose()


def _rows(conn: Connection, table: Table) -> dict[int, dict[str, Any]]:
    return {r.id: dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.id))}


def _update(conn: Connection, table: Table) -> None:
    conn.execute(table.update().where(table.c.id == 3).values(actor="mallory"))


def _delete(conn: Connection, table: Table) -> None:
    conn.execute(table.delete().where(table.c.id == 3))


def _insert(conn: Connection, table: Table) -> None:
    rows = _rows(conn, table)
    conn.execute(table.insert().values({**rows[3], "id": max(rows) + 1}))


def _reorder(conn: Connection, table: Table) -> None:
    rows = _rows(conn, table)
    for this, that in ((4, 5), (5, 4)):
        conn.execute(table.update().where(table.c.id == this).values(
            {k: v for k, v in rows[that].items() if k != "id"}))


def _people(settings: Settings) -> int:
    """The team added, and how many events that recorded: what the tests expect follows from it."""
    add_people(settings)
    with session(settings) as s:
        return len(audit.events(s))


def _verify(run_cli, settings: Settings, *options: str) -> tuple[int, dict[str, Any]]:  # type: ignore[no-untyped-def]
    result = run_cli(settings, "audit", "verify", "--json", *options, as_user="admin")
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.mark.parametrize(("tamper", "first_broken", "problem"), [
    (_update, 3, "does not match its content"),
    (_delete, 4, "does not follow event #2"),
    (_insert, None, "does not match its content"),  # None: the event after the last
    (_reorder, 4, "does not match its content"),
], ids=["update", "delete", "insert", "reorder"])
def test_verify_names_the_first_event_changed_behind_the_triggers(db_settings, run_cli, tamper: Tamper,
                                                                 first_broken: int | None, problem: str):
    recorded = _people(db_settings)
    first_broken = first_broken or recorded + 1
    assert _verify(run_cli, db_settings)[0] == 0
    with _as_owner(db_settings) as (conn, table):
        tamper(conn, table)
    code, report = _verify(run_cli, db_settings)
    assert (code, report["ok"], report["first_broken"]) == (1, False, first_broken)
    assert problem in report["problem"]
    human = run_cli(db_settings, "audit", "verify", as_user="admin")
    assert human.returncode == 1 and f"event #{first_broken}" in human.stdout


@pytest.mark.parametrize("keep", [3, 0], ids=["tail", "everything"])
def test_a_truncation_is_detected_against_the_last_exported_head(db_settings, run_cli, keep: int):
    """The owner deletes the newest events and rewinds the chain head to match: only the head
    exported before the truncation can tell."""
    recorded = _people(db_settings)
    code, report = _verify(run_cli, db_settings, "--export")
    assert (code, report["ok"], report["head"]["position"]) == (0, True, recorded)
    exported = [json.loads(line) for line in (db_settings.home / "audit" / "heads.jsonl").read_text().splitlines()]
    assert [(h["position"], h["hash"]) for h in exported] == [(recorded, report["head"]["hash"])]

    with _as_owner(db_settings) as (conn, table):
        conn.execute(table.delete().where(table.c.id > keep))
        conn.execute(text("UPDATE audit_chain_head SET position = :p, hash = :h"),
                     {"p": keep, "h": _rows(conn, table)[keep]["hash"] if keep else audit.GENESIS})

    code, report = _verify(run_cli, db_settings)
    assert (code, report["ok"], report["first_broken"], report["exported"]["position"]) == (
        1, False, recorded, recorded)
    assert f"the log ends at event #{keep}" in report["problem"] and "truncated" in report["problem"]


@pytest.mark.parametrize("statement", [
    "UPDATE audit_chain_head SET position = 0", "DELETE FROM audit_chain_head", "TRUNCATE audit_chain_head"])
def test_the_chain_head_never_moves_back(db_settings, statement):
    """Rewinding the head to hide a deleted tail needs the triggers off, like changing an event."""
    add_people(db_settings)
    if statement.startswith("TRUNCATE") and db_settings.database_url.startswith("sqlite"):
        statement = "DELETE FROM audit_chain_head WHERE id = 1"  # SQLite has no TRUNCATE
    with pytest.raises(DBAPIError, match="audit chain head only moves forward"):
        with get_engine(db_settings.database_url).begin() as conn:
            conn.execute(text(statement))


def test_a_damaged_heads_file_is_named(settings, run_cli):
    add_people(settings)
    heads = settings.home / "audit" / "heads.jsonl"
    heads.parent.mkdir(parents=True)  # on PostgreSQL nothing else has made the home
    heads.write_text('{"position": 10, "hash": "ab"}\nnot json\n')
    result = run_cli(settings, "audit", "verify", as_user="admin")
    assert (result.returncode, result.stderr.splitlines()[0]) == (
        2, f"error: {heads} line 2: not an exported head; expected JSON with position and hash")


def test_the_server_exports_the_head_and_refuses_to_export_a_broken_chain(db_settings, caplog):
    """The export ``valueloop server`` runs every minute: a log line and a line in heads.jsonl. It
    checks what was appended since the last exported head (a full check is ``audit verify``)."""
    recorded = _people(db_settings)
    heads = db_settings.home / "audit" / "heads.jsonl"
    with caplog.at_level("INFO", logger="valueloop.audit"):
        assert audit.export_head(db_settings).ok
        audit.export_head(db_settings)  # an unchanged head is not written again
    assert len(heads.read_text().splitlines()) == 1
    assert f"audit head: event #{recorded} sha256:" in caplog.text
    with session(db_settings) as s:
        users.create_token(s, "dana")
    with _as_owner(db_settings) as (conn, table):
        conn.execute(table.update().where(table.c.id == recorded + 1).values(actor="mallory"))
    caplog.clear()
    with caplog.at_level("INFO", logger="valueloop.audit"):
        assert not audit.export_head(db_settings).ok
    assert len(heads.read_text().splitlines()) == 1
    assert f"audit chain is broken at event #{recorded + 1}" in caplog.text


def test_the_server_starts_exporting_heads(settings, tmp_path, run_cli):
    """``valueloop server`` exports a head as it starts (a readiness wait, not a measurement)."""
    import os
    import socket
    import subprocess
    import sys
    import time

    recorded = _people(settings)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALUELOOP_")} | settings.as_env()
    heads = settings.home / "audit" / "heads.jsonl"
    with (tmp_path / "server.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "valueloop", "server", "--port", str(port),
                                    "--no-scheduler"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not heads.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert heads.exists(), (tmp_path / "server.log").read_text()
    assert json.loads(heads.read_text().splitlines()[-1])["position"] == recorded


def test_concurrent_appends_never_fork_the_chain(db_settings):
    add_people(db_settings)
    errors: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            for i in range(8):
                with session(db_settings) as s:
                    audit.record(s, "admin", "test.append", "test", f"{worker}-{i}")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with session(db_settings) as s:
        report = audit.verify(s)
        ids = [e.id for e in audit.events(s)]
    assert (report.ok, report.events, report.head.position) == (True, 42, 42)
    assert ids == list(range(1, 43))


def test_a_change_recorded_before_a_row_lock_does_not_deadlock(pg_settings):
    """One transaction records and then updates a row, another updates that row and then records:
    the chain head is taken as a transaction commits, so neither waits on the other's head."""
    add_people(pg_settings)
    recorded, updated = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def record_then_update() -> None:
        try:
            with session(pg_settings) as s:
                audit.record(s, "admin", "test.first", "user", "dana")
                recorded.set()
                assert updated.wait(60)  # a bound, not a measurement
                s.execute(text("UPDATE users SET email = 'dana@first.example' WHERE name = 'dana'"))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def update_then_record() -> None:
        try:
            assert recorded.wait(60)
            with session(pg_settings) as s:
                s.execute(text("UPDATE users SET email = 'dana@second.example' WHERE name = 'dana'"))
                updated.set()
                audit.record(s, "admin", "test.second", "user", "dana")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=record_then_update), threading.Thread(target=update_then_record)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with session(pg_settings) as s:
        assert [e.action for e in audit.events(s, action="test.")] == ["test.second", "test.first"]
        assert audit.verify(s).ok


def test_the_migration_chains_the_events_already_there(db_settings):
    """A database from before the chain: its events are chained when it is upgraded."""
    db_settings.home.mkdir(parents=True)
    engine = create_engine(db_settings.database_url)
    try:
        with engine.begin() as conn:
            from alembic import command

            command.upgrade(_alembic_config(conn), "0001")
            for i in range(5):
                conn.execute(text(
                    "INSERT INTO audit_events (at, actor, action, object_type, object_id, after) "
                    "VALUES (:at, 'admin', 'user.add', 'user', :name, :after)"),
                    {"at": f"2026-01-0{i + 1} 10:00:00.123456", "name": f"u{i}",
                     "after": json.dumps({"name": f"u{i}", "n": 1.5})})
    finally:
        engine.dispose()
    with session(db_settings) as s:
        users.add_user(s, None, users.NewUser(name="admin"))
    with session(db_settings) as s:
        report = audit.verify(s)
    assert (report.ok, report.events, report.head.position) == (True, 6, 6)


# -- PostgreSQL: the server's role may not alter or truncate the audit table ------------------


@pytest.fixture
def split_roles(postgres_server: str, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    """A database owned by a migration role, and settings where the server connects as an
    application role of its own (roles are created by the test session's superuser)."""
    suffix = uuid.uuid4().hex[:8]
    owner, app, database = f"vl_owner_{suffix}", f"vl_app_{suffix}", f"t_roles_{suffix}"
    plain = postgres_server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {owner} LOGIN")
        conn.execute(f"CREATE ROLE {app} LOGIN")
        conn.execute(f'CREATE DATABASE "{database}" OWNER {owner}')
    server = postgres_server.split("@", 1)[1].rsplit("/", 1)[0]
    return load_settings({
        "VALUELOOP_HOME": str(tmp_path / "home"),
        "VALUELOOP_DATABASE_URL": f"postgresql+psycopg://{app}@{server}/{database}",
        "VALUELOOP_MIGRATION_DATABASE_URL": f"postgresql+psycopg://{owner}@{server}/{database}",
    })


def test_a_truncate_is_refused_even_to_the_owner(pg_settings):
    """Row triggers do not see TRUNCATE on PostgreSQL; a statement trigger does."""
    add_people(pg_settings)
    with pytest.raises(DBAPIError, match="audit log is append-only"):
        with get_engine(pg_settings.database_url).begin() as conn:
            conn.execute(text("TRUNCATE audit_events"))


@pytest.mark.parametrize("statement", [
    "ALTER TABLE audit_events DISABLE TRIGGER ALL",
    "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
    "TRUNCATE audit_events",
    "DELETE FROM audit_events",
    "UPDATE audit_events SET actor = 'mallory'",
    "DROP TABLE audit_events",
    "UPDATE audit_chain_head SET position = 0",
    "DELETE FROM audit_chain_head",
])
def test_the_server_role_cannot_switch_off_or_truncate_the_audit(split_roles, run_cli, statement):
    add_people(split_roles)  # the server's role does its work
    with session(split_roles) as s:
        users.create_token(s, "dana")
    engine = create_engine(split_roles.database_url)
    try:
        with engine.connect() as conn:
            events = conn.scalar(text("SELECT count(*) FROM audit_events"))
        with pytest.raises(DBAPIError, match="must be owner|permission denied|append-only|only moves forward"):
            with engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        engine.dispose()
    assert events > 0 and _verify(run_cli, split_roles)[1]["events"] == events


def test_the_server_needs_no_owner_credentials_once_the_owner_migrated(split_roles, run_cli):
    """Migrations are a deploy step of their own; the server's role alone cannot migrate."""
    app_only = load_settings({"VALUELOOP_HOME": str(split_roles.home),
                              "VALUELOOP_DATABASE_URL": split_roles.database_url})
    with pytest.raises(ValueloopError, match="permission denied .* run `valueloop db migrate` with "
                                             "VALUELOOP_MIGRATION_DATABASE_URL"):
        add_people(app_only)
    migrated = run_cli(split_roles, "db", "migrate", "--json")
    assert migrated.returncode == 0, migrated.stderr
    report = json.loads(migrated.stdout)
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from valueloop.store.db import MIGRATIONS

    scripts = Config()
    scripts.set_main_option("script_location", str(MIGRATIONS))
    assert report["revisions"] == sorted(ScriptDirectory.from_config(scripts).get_heads())  # at the newest
    assert report["server_role"] == make_url(app_only.database_url).username
    add_people(app_only)
    assert _verify(run_cli, app_only)[1]["ok"]


def test_a_server_role_that_could_alter_the_audit_is_refused(split_roles, postgres_server):
    """Connecting the server as a superuser (or the owner) defeats the split: it is refused."""
    get_engine(split_roles.database_url, split_roles.migration_database_url)  # migrated by the owner
    database = split_roles.database_url.rsplit("/", 1)[1]
    superuser = postgres_server.rsplit("/", 1)[0] + f"/{database}"
    with pytest.raises(ValueloopError, match="may alter the audit table: .* superuser"):
        get_engine(superuser, split_roles.migration_database_url)


# -- reading the trail: an acting user, filtered by membership -----------------------------------


def test_the_trail_needs_an_acting_user_and_shows_what_they_may_see(settings, approved_usecase, run_cli):
    approved_usecase(settings)
    with session(settings) as s:
        users.add_user(s, "admin", users.NewUser(name="zoe"))
        users.create_token(s, "zoe")

    nobody = run_cli(settings, "audit")
    assert (nobody.returncode, nobody.stderr.strip()) == (
        5, "error: no acting user: pass --as USER or set VALUELOOP_USER")

    def trail(user: str, *args: str) -> list[dict[str, Any]]:
        result = run_cli(settings, "audit", *args, "--json", as_user=user)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    everything = trail("admin")
    assert {"user.add", "usecase.create", "token.create"} <= {e["action"] for e in everything}
    assert [(e["actor"], e["action"]) for e in trail("zoe")] == [("zoe", "token.create")]
    dana = trail("dana")
    assert dana == [e for e in everything if e["usecase"] == "churn" or e["actor"] == "dana"]
    assert trail("dana", "churn") == [e for e in everything if e["usecase"] == "churn"]
    refused = run_cli(settings, "audit", "churn", as_user="zoe")
    assert refused.returncode == 6 and "zoe may not view on use case 'churn'" in refused.stderr


def test_over_http_the_trail_is_filtered_and_the_chain_verified(settings, server):  # noqa: F811
    formulated(settings)
    with session(settings) as s:
        users.add_user(s, "admin", users.NewUser(name="zoe"))
    api = server(settings)  # a token for each user: a token.create event each

    everything = api("GET", "/api/audit", "admin").json()
    assert [(e["actor"], e["action"]) for e in api("GET", "/api/audit", "zoe").json()] == [
        ("zoe", "token.create")]
    assert api("GET", "/api/audit", "ana").json() == [
        e for e in everything if e["usecase"] == "churn" or e["actor"] == "ana"]
    refused = api("GET", "/api/audit?usecase=churn", "zoe")
    assert refused.status_code == 403 and "zoe may not view on use case 'churn'" in refused.text
    assert api("GET", "/api/audit/verify").status_code == 401

    verified = api("GET", "/api/audit/verify", "zoe").json()
    assert (verified["ok"], verified["events"]) == (True, len(everything))
    with _as_owner(settings) as (conn, table):
        _update(conn, table)
    broken = api("GET", "/api/audit/verify", "zoe").json()
    assert (broken["ok"], broken["first_broken"]) == (False, 3)
    assert broken["problem"] == "event #3 does not match its content hash: it was changed"
