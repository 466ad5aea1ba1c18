"""Users and API tokens: shown once, stored hashed, revocable, expiring."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from outcomes.support import add_people, db_state
from sqlalchemy import update

from valueloop.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound, PermissionDenied
from valueloop.outcomes import users
from valueloop.store import session
from valueloop.store.models import ApiToken, utcnow


def test_the_first_user_is_the_admin_and_only_an_admin_adds_users(db_settings):
    with session(db_settings) as s:
        first = users.add_user(s, None, users.NewUser(name="root"))
        users.add_user(s, "root", users.NewUser(name="olivia"))
    assert first.is_admin
    before = db_state(db_settings)
    with pytest.raises(PermissionDenied, match="olivia may not administer: requires role admin; olivia has no role"):
        with session(db_settings) as s:
            users.add_user(s, "olivia", users.NewUser(name="mallory", is_admin=True))
    with pytest.raises(Conflict, match="user 'olivia' already exists"), session(db_settings) as s:
        users.add_user(s, "root", users.NewUser(name="olivia"))
    assert db_state(db_settings) == before
    with session(db_settings) as s:
        assert [(u.name, u.is_admin) for u in users.list_users(s, "root")] == [("olivia", False), ("root", True)]


def test_a_token_is_shown_once_and_stored_only_as_its_hash(db_settings):
    add_people(db_settings)
    with session(db_settings) as s:
        issued = users.create_token(s, "dana", "laptop")
    assert issued.token.startswith("vl_") and issued.token.startswith(issued.prefix)
    state = db_state(db_settings)
    stored = repr(state)
    assert issued.token not in stored
    assert hashlib.sha256(issued.token.encode()).hexdigest() in stored
    with session(db_settings) as s:
        listed = users.list_tokens(s, "dana")
        assert users.authenticate(s, issued.token).name == "dana"
    assert [(t.name, t.user, t.status) for t in listed] == [("laptop", "dana", "active")]
    assert "token" not in listed[0].model_dump()


def test_revoked_expired_unknown_and_missing_tokens_are_refused(db_settings):
    add_people(db_settings)
    with session(db_settings) as s:
        revoked = users.create_token(s, "dana", "old")
        expiring = users.create_token(s, "dana", "ci", expires_in=timedelta(hours=1))
    with session(db_settings) as s:
        assert users.revoke_token(s, "dana", revoked.id).status == "revoked"
        # the clock moves on: the token's hour is over
        s.execute(update(ApiToken).where(ApiToken.id == expiring.id).values(expires_at=utcnow() - timedelta(seconds=1)))
    refusals = [
        (revoked.token, f"token {revoked.prefix}… was revoked at"),
        (expiring.token, f"token {expiring.prefix}… expired at"),
        ("vl_not-a-token", "unknown token"),
        (None, "missing bearer token: send 'Authorization: Bearer <token>'"),
    ]
    for secret, message in refusals:
        with pytest.raises(AuthenticationFailed, match=message), session(db_settings) as s:
            users.authenticate(s, secret)
    with session(db_settings) as s:
        assert [t.status for t in users.list_tokens(s, "dana")] == ["revoked", "expired"]


def test_another_users_tokens_need_an_admin(db_settings):
    add_people(db_settings)
    with session(db_settings) as s:
        olivias = users.create_token(s, "olivia")
    before = db_state(db_settings)
    refusals = [
        lambda s: users.revoke_token(s, "dana", olivias.id),
        lambda s: users.list_tokens(s, "dana", every_user=True),
    ]
    for act in refusals:
        with pytest.raises(PermissionDenied, match="dana may not administer: requires role admin"):
            with session(db_settings) as s:
                act(s)
    with pytest.raises(InvalidInput, match="expires_in: must be positive"), session(db_settings) as s:
        users.create_token(s, "dana", expires_in=timedelta(0))
    with pytest.raises(NotFound, match="token 999: no such token"), session(db_settings) as s:
        users.revoke_token(s, "dana", 999)
    # a token is its holder's identity: nobody issues one for another user, the admin included
    for actor in ("dana", "admin"):
        with pytest.raises(PermissionDenied, match=f"{actor} may issue tokens for their own account only"):
            with session(db_settings) as s:
                users.create_token(s, actor, for_user="olivia")
    assert db_state(db_settings) == before

    with session(db_settings) as s:
        users.revoke_token(s, "admin", olivias.id)
        every = users.list_tokens(s, "admin", every_user=True)
    assert [(t.user, t.status) for t in every] == [("olivia", "revoked")]
