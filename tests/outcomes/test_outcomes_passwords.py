"""Console passwords: argon2id hashes set by their user or, initially, by the admin, and the
sessions they open, which signing out ends on the server."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from outcomes.support import db_state
from sqlalchemy import select

from valueloop.errors import AuthenticationFailed, InvalidInput, PermissionDenied
from valueloop.outcomes import users
from valueloop.security.sessions import sign_in, sign_out, signed_in
from valueloop.store import session
from valueloop.store.models import User


def _people(settings) -> None:  # type: ignore[no-untyped-def]
    with session(settings) as s:
        users.add_user(s, None, users.NewUser(name="root"))
        users.add_user(s, "root", users.NewUser(name="olivia"))
        users.add_user(s, "root", users.NewUser(name="dana"))


def test_the_admin_sets_an_initial_password_stored_as_an_argon2_hash(db_settings):
    _people(db_settings)
    with session(db_settings) as s:
        view = users.set_password(s, "root", "olivia", "first secret 42")
        stored = s.scalar(select(User.password_hash).where(User.name == "olivia"))
    assert view.has_password and stored.startswith("$argon2id$") and "first secret 42" not in stored
    with session(db_settings) as s:
        started = sign_in(s, name="olivia", password="first secret 42")
        assert signed_in(s, started.secret).user == "olivia"
        sign_out(s, started.secret)
    with pytest.raises(AuthenticationFailed, match="session ended"), session(db_settings) as s:
        signed_in(s, started.secret)


def test_only_the_user_or_the_admin_sets_a_password_and_a_short_one_is_refused(db_settings):
    _people(db_settings)
    before = db_state(db_settings)
    with pytest.raises(PermissionDenied, match="dana may not administer: requires role admin"):
        with session(db_settings) as s:
            users.set_password(s, "dana", "olivia", "dana knows best")
    with pytest.raises(InvalidInput, match="password: must be 10 to 1024 characters long, got 5"):
        with session(db_settings) as s:
            users.set_password(s, "olivia", "olivia", "short")
    assert db_state(db_settings) == before
    with session(db_settings) as s:
        users.set_password(s, "olivia", "olivia", "her own choice")
    with pytest.raises(AuthenticationFailed, match="unknown user or wrong password"), session(db_settings) as s:
        sign_in(s, name="olivia", password="dana knows best")
    with pytest.raises(AuthenticationFailed, match="unknown user or wrong password"), session(db_settings) as s:
        sign_in(s, name="dana", password="no password set")  # dana has none: no way in by password


def test_valueloop_users_passwd_reads_the_password_from_stdin(db_settings):
    _people(db_settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALUELOOP_")}
    env.update(db_settings.as_env(), VALUELOOP_USER="root")
    done = subprocess.run([sys.executable, "-m", "valueloop", "users", "passwd", "dana"], input="dana's new secret\n",
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "password of dana is set" in done.stdout
    with session(db_settings) as s:
        assert sign_in(s, name="dana", password="dana's new secret").user == "dana"
