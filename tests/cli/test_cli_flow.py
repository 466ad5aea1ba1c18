"""The Outcomes phase through the ``valueloop`` command, as a subprocess, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from outcomes.support import PHONE, add_people, db_state

from valueloop.durations import RULE
from valueloop.errors import AuthenticationFailed, GateClosed
from valueloop.outcomes.privacy import require_privacy_approval
from valueloop.outcomes.users import authenticate
from valueloop.store import session


def test_formulate_approve_with_a_condition_and_decide_again(db_settings, run_cli, refused, tmp_path):
    add_people(db_settings)

    def ok(*args: str, as_user: str | None = None) -> str:
        result = run_cli(db_settings, *args, as_user=as_user, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout

    ok("init", "project")
    spec_file = tmp_path / "project" / "valueloop.yaml"
    created = json.loads(ok("usecase", "create", str(spec_file), "--json", as_user="olivia"))
    assert (created["name"], created["state"], created["owner"]) == ("churn", "draft", "olivia")
    ok("usecase", "advance", "churn", "formulated", as_user="ana")
    submitted = json.loads(ok("privacy", "submit", "churn", "--json", as_user="olivia"))
    assert (submitted["version"], submitted["status"]) == (1, "pending")

    before = db_state(db_settings)
    refused(run_cli(db_settings, "privacy", "approve", "churn", "-c", "postcode=generalize:prefix=2",
                    as_user="dana"),
            6, "error: dana may not decide privacy on use case 'churn': requires role privacy_officer; "
               "dana has data_scientist")
    assert db_state(db_settings) == before

    approved = json.loads(ok("privacy", "approve", "churn", "-c", "postcode=generalize:prefix=2",
                             "-m", "regions only", "--json", as_user="pia"))
    assert approved["conditions"] == [
        {"column": "postcode", "treatment": "generalize", "params": {"prefix": 2}, "justification": ""}]
    assert re.search(r"postcode\W+generalize\W+\{'prefix': 2\}\W+condition",
                     ok("privacy", "show", "churn", as_user="dana"))
    assert "now in_development (cycle 1)" in ok("usecase", "advance", "churn", "in_development",
                                                 as_user="olivia")

    data = yaml.safe_load(spec_file.read_text())
    data["privacy"]["columns"].append(PHONE)
    spec_file.write_text(yaml.safe_dump(data))
    ok("usecase", "update", str(spec_file), as_user="ana")
    versions = json.loads(ok("privacy", "show", "churn", "--json", as_user="olivia"))
    assert [(v["version"], v["status"]) for v in versions] == [(1, "approved"), (2, "pending")]
    assert json.loads(ok("usecase", "show", "churn", "--json", as_user="olivia"))["privacy"] == "v2 pending"
    with pytest.raises(GateClosed, match="DPIA v2 of 'churn' awaits .* \\(added phone\\)"):
        with session(db_settings) as s:
            require_privacy_approval(s, "churn")

    ok("privacy", "approve", "churn", "-c", "postcode=generalize:prefix=2", as_user="pia")
    with session(db_settings) as s:
        assert require_privacy_approval(s, "churn").version == 2

    trail = json.loads(ok("audit", "churn", "--json", as_user="dana"))
    assert [(e["actor"], e["action"]) for e in trail] == [
        ("olivia", "usecase.create"), ("ana", "usecase.advance"), ("olivia", "privacy.submit"),
        ("olivia", "usecase.advance"), ("pia", "privacy.approve"), ("pia", "usecase.advance"),
        ("olivia", "usecase.advance"), ("ana", "usecase.update"), ("ana", "privacy.reopen"),
        ("pia", "privacy.approve"),
    ]
    by_pia = json.loads(ok("audit", "churn", "--actor", "pia", "--json", as_user="dana"))
    assert [e["action"] for e in by_pia] == [
        "privacy.approve", "usecase.advance", "privacy.approve"]
    table = ok("audit", "churn", "--action", "privacy.", "--limit", "2", as_user="dana")
    assert "privacy.reopen" in table and "privacy.approve" in table and "privacy.submit" not in table


def test_tokens_are_shown_once_listed_without_secrets_and_revoked(settings, run_cli, refused):
    add_people(settings)
    created = run_cli(settings, "tokens", "create", "--name", "laptop", "--expires-in", "30d",
                      as_user="dana")
    assert created.returncode == 0, created.stderr
    assert "This is the only time the token is shown." in created.stdout
    secret = next(w for w in created.stdout.split() if w.startswith("vl_"))
    with session(settings) as s:
        assert authenticate(s, secret).name == "dana"

    listed = run_cli(settings, "tokens", "list", "--json", as_user="dana")
    tokens = json.loads(listed.stdout)
    assert secret not in listed.stdout and "token" not in tokens[0]
    assert [(t["name"], t["user"]) for t in tokens] == [("laptop", "dana")]

    before = db_state(settings)
    # a token is its holder's identity: the command line has no way to issue one for another
    refused(run_cli(settings, "tokens", "create", "--user", "olivia", as_user="admin"), 2,
            "No such option: --user")
    refused(run_cli(settings, "tokens", "list", "--all", as_user="dana"), 6, "requires role admin")
    refused(run_cli(settings, "tokens", "revoke", str(tokens[0]["id"]), as_user="olivia"), 6,
            "olivia may not administer")
    refused(run_cli(settings, "tokens", "create", "--expires-in", "soon", as_user="dana"), 2,
            f'error: --expires-in: {RULE}, got "soon"')
    refused(run_cli(settings, "tokens", "revoke", "999", as_user="dana"), 3, "token 999: no such token")
    assert db_state(settings) == before

    revoked = run_cli(settings, "tokens", "revoke", str(tokens[0]["id"]), as_user="dana")
    assert "is revoked" in revoked.stdout
    with pytest.raises(AuthenticationFailed, match="was revoked"), session(settings) as s:
        authenticate(s, secret)
    issued = json.loads(run_cli(settings, "tokens", "create", "--json", as_user="olivia").stdout)
    assert issued["user"] == "olivia" and issued["token"].startswith("vl_")
