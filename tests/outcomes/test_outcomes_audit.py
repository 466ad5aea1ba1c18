"""The audit log is append-only in the database itself, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from outcomes.support import add_people, db_state
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from valueloop.outcomes import audit, users
from valueloop.store import get_engine, session
from valueloop.store.models import utcnow


@pytest.mark.parametrize("statement", ["UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"])
def test_the_database_refuses_to_change_the_audit_log(db_settings, statement):
    add_people(db_settings)
    before = db_state(db_settings)
    with pytest.raises(DBAPIError, match="audit log is append-only"):
        with get_engine(db_settings.database_url).begin() as conn:
            conn.execute(text(statement))
    assert db_state(db_settings) == before


def test_events_are_filtered_by_actor_action_time_and_count(settings):
    start = utcnow() - timedelta(seconds=1)
    add_people(settings)
    with session(settings) as s:
        users.create_token(s, "dana")
        users.create_token(s, "olivia")
    with session(settings) as s:
        everything = audit.events(s)
        assert len(everything) == 12 and all(e.at >= start for e in everything)
        assert [(e.actor, e.after["user"]) for e in audit.events(s, action="token.")] == [
            ("dana", "dana"), ("olivia", "olivia")]
        assert [e.action for e in audit.events(s, actor="dana")] == ["token.create"]
        assert audit.events(s, limit=2) == everything[-2:]
        assert audit.events(s, since=utcnow() + timedelta(minutes=1)) == []


def test_an_event_is_written_in_the_same_transaction_as_its_change(db_settings):
    add_people(db_settings)
    before = db_state(db_settings)
    with pytest.raises(RuntimeError), session(db_settings) as s:
        users.create_token(s, "dana")
        raise RuntimeError("the request fails after the change")
    assert db_state(db_settings) == before
    with session(db_settings) as s:
        users.create_token(s, "ana")
    with session(db_settings) as s:  # chained as the transaction committed
        assert [e.after["user"] for e in audit.events(s, action="token.")] == ["ana"]
        assert audit.verify(s).ok
