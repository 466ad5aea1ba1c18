"""An existing database upgrades with its rows: built at the first schema revision with the data
an early valueloop wrote, then migrated to the newest revisions as `valueloop` does on first use;
the later phases' rows, written before their use case was a foreign key, upgrade too, and a row
naming no use case stops the upgrade with what to do."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from outcomes.support import churn_data
from rows import USECASE_TABLES, minimal_row
from sqlalchemy import create_engine, func, inspect, select, text

from valueloop.config import Settings
from valueloop.outcomes import audit, privacy, usecases
from valueloop.outcomes.roles import Role, roles_of
from valueloop.outcomes.spec import digest_of, parse_spec
from valueloop.outcomes.users import get_user
from valueloop.store import get_engine, session
from valueloop.errors import ValueloopError
from valueloop.store.db import MIGRATIONS, _alembic_config, schema_revisions
from valueloop.store.models import Base

PEOPLE = [("admin", True), ("olivia", False), ("ana", False), ("pia", False), ("dave", False)]
AT = datetime(2025, 3, 1, 9, 30)
#: the tables naming a use case made before the use case became a foreign key (revision 0010)
BEFORE_KEYS = [t for t in USECASE_TABLES if t != "intents"]


def _foundation_database(url: str, retention: dict[str, str] | None = None) -> dict:
    """The schema of revision 0001 with a team, a use case whose file names its privacy officer
    (as files did then), its members and audit events; returns the file as stored. ``retention``
    spells columns' retention as files did before it was a duration."""
    from alembic import command

    spec = parse_spec(churn_data()).model_dump(mode="json")  # stored as the parsed file, then and now
    spec["members"]["privacy_officer"] = ["pia"]
    for column in spec["privacy"]["columns"]:
        column["retention"] = (retention or {}).get(column["column"], column["retention"])
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
        for name, is_admin in PEOPLE:
            conn.execute(text("INSERT INTO users (name, email, is_admin, created_at) VALUES (:n, :e, :a, :t)"),
                         {"n": name, "e": f"{name}@example.com", "a": is_admin, "t": AT})
        conn.execute(text("INSERT INTO usecases (name, title, state, spec, spec_digest, created_at, updated_at) "
                          "VALUES ('churn', 'Predict churn', 'formulated', :spec, :digest, :t, :t)"),
                     {"spec": json.dumps(spec), "digest": digest_of(spec), "t": AT})
        for user, role in [("olivia", "owner"), ("ana", "analyst"), ("pia", "privacy_officer"),
                           ("dave", "data_engineer")]:
            conn.execute(text("INSERT INTO members (usecase_id, user_id, role) SELECT u.id, p.id, :r "
                              "FROM usecases u, users p WHERE u.name = 'churn' AND p.name = :p"),
                         {"r": role, "p": user})
        for actor, action in [("admin", "user.add"), ("olivia", "usecase.create"), ("ana", "usecase.advance")]:
            conn.execute(text("INSERT INTO audit_events (at, actor, action, object_type, object_id, usecase) "
                              "VALUES (:t, :a, :x, 'usecase', 'churn', 'churn')"), {"t": AT, "a": actor, "x": action})
    engine.dispose()
    return spec


def _before_usecase_keys(url: str, usecase: str) -> None:
    """Upgrade to the revisions before the use case became a foreign key and give every later
    phase's table a row naming ``usecase``."""
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(url)
    with engine.begin() as conn:
        for revision in ScriptDirectory.from_config(cfg).get_revision("0010").down_revision:
            command.upgrade(_alembic_config(conn), revision)
        for name in BEFORE_KEYS:
            conn.execute(Base.metadata.tables[name].insert(), minimal_row(Base.metadata.tables[name], usecase))
    engine.dispose()


def test_a_foundation_database_upgrades_with_its_rows_and_works(db_settings: Settings) -> None:
    _foundation_database(db_settings.database_url)
    _before_usecase_keys(db_settings.database_url, "churn")
    get_engine(db_settings.database_url)  # migrates to the newest revisions, as on first use

    with session(db_settings) as s:
        churn = usecases.get_usecase(s, "churn")
        stored = usecases.spec_of(churn)  # the file still validates: its privacy officer became an appointment
        assert "privacy_officer" not in churn.spec["members"] and churn.spec_digest == stored.digest()
        assert get_user(s, "pia").is_privacy_officer and not get_user(s, "olivia").is_privacy_officer
        assert usecases.members_by_role(churn) == {Role.owner: ["olivia"], Role.analyst: ["ana"],
                                                   Role.data_engineer: ["dave"]}
        assert roles_of(s, get_user(s, "pia"), churn) == {Role.privacy_officer}
        trail = audit.events(s, usecase="churn")
        assert [(e.actor, e.action, e.at.replace(tzinfo=None)) for e in trail] == [
            ("admin", "user.add", AT), ("olivia", "usecase.create", AT), ("ana", "usecase.advance", AT)]
    # ... and the loop goes on from there: the DPIA is submitted and decided by the officer
    with session(db_settings) as s:
        privacy.submit(s, "olivia", "churn")
        assert privacy.approve(s, "pia", "churn").status == "approved"
        assert usecases.get_usecase(s, "churn").state == "approved"
    with get_engine(db_settings.database_url).connect() as conn:  # the later phases' rows came along
        assert {t: conn.execute(select(func.count()).select_from(Base.metadata.tables[t])).scalar_one()
                for t in BEFORE_KEYS} == dict.fromkeys(BEFORE_KEYS, 1)


def test_a_row_naming_no_usecase_stops_the_upgrade(db_settings: Settings) -> None:
    """Not repaired: deleting a model's or a batch job's lineage is the operator's decision."""
    _foundation_database(db_settings.database_url)
    _before_usecase_keys(db_settings.database_url, "churm")
    with pytest.raises(ValueloopError) as refused:
        get_engine(db_settings.database_url)
    assert "upgrade 0010: rows name use cases that do not exist (alerts: 'churm'; batch_jobs: 'churm';" \
        in str(refused.value)
    assert "SELECT DISTINCT usecase FROM <table> WHERE usecase NOT IN (SELECT name FROM usecases)" \
        in str(refused.value)
    old = create_engine(db_settings.database_url)
    try:  # nothing changed: still at the revisions before, without the keys
        assert "0010" not in schema_revisions(old)
        assert inspect(old).get_foreign_keys("training_runs") == []
    finally:
        old.dispose()


def _approved_at_foundation(url: str, spec: dict) -> None:
    """The use case's privacy section decided by its officer, as revision 0001 stored a DPIA."""
    content = spec["privacy"]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO privacy_assessments (usecase_id, version, content, content_digest, status, "
            "submitted_by, submitted_at, decided_by, decided_at, conditions) SELECT id, 1, :c, :d, "
            "'approved', 'olivia', :t, 'pia', :t, '[]' FROM usecases WHERE name = 'churn'"),
            {"c": json.dumps(content), "d": digest_of(content), "t": AT})
        conn.execute(text("UPDATE usecases SET state = 'approved' WHERE name = 'churn'"))
    engine.dispose()


def test_a_retention_spelled_in_words_becomes_days_and_the_dpia_stays_decided(db_settings: Settings) -> None:
    spec = _foundation_database(db_settings.database_url, {"email": "24 months", "birth_date": "2 Years",
                                                           "name": "n/a"})
    _approved_at_foundation(db_settings.database_url, spec)
    get_engine(db_settings.database_url)

    with session(db_settings) as s:
        churn = usecases.get_usecase(s, "churn")
        columns = {c.column: c.retention for c in usecases.spec_of(churn).privacy.columns}
        assert columns == {"name": "not stored", "email": "730d", "birth_date": "730d", "postcode": "730d"}
        assert privacy.require_privacy_approval(s, churn).version == 1  # the decision holds
        privacy.reopen_if_changed(s, "olivia", churn)
        assert [a.status for a in churn.assessments] == ["approved"]


def test_a_retention_that_names_no_period_is_decided_again(db_settings: Settings) -> None:
    spec = _foundation_database(db_settings.database_url, {"email": "as long as needed"})
    _approved_at_foundation(db_settings.database_url, spec)
    get_engine(db_settings.database_url)

    with session(db_settings) as s:
        churn = usecases.get_usecase(s, "churn")
        assert {c.column: c.retention for c in usecases.spec_of(churn).privacy.columns}["email"] == "36500d"
        privacy.reopen_if_changed(s, "olivia", churn)  # as the next change of the file does
        assert [a.status for a in churn.assessments] == ["approved", "pending"]
        with pytest.raises(ValueloopError):
            privacy.require_privacy_approval(s, churn)
