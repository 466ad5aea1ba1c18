"""The control-plane HTTP API on a real uvicorn, with bearer tokens, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from outcomes.support import PHONE, add_people, churn_data, db_state, formulated
from sqlalchemy import update

from valueloop.errors import GateClosed
from valueloop.outcomes.privacy import require_privacy_approval
from valueloop.store import session
from valueloop.store.models import ApiToken, utcnow

POSTCODE = {"column": "postcode", "treatment": "generalize", "params": {"prefix": 2}, "justification": ""}


def error(response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["error"]["message"]


def test_the_dpia_flow_over_http(db_settings, server):
    add_people(db_settings)
    api = server(db_settings)

    created = api("POST", "/api/usecases", "olivia", json=churn_data())
    assert created.status_code == 201, created.text
    assert created.json()["state"] == "draft"
    assert api("POST", "/api/usecases/churn/advance", "ana", json={"state": "formulated"}).status_code == 200
    submitted = api("POST", "/api/usecases/churn/privacy/submit", "olivia")
    assert (submitted.status_code, submitted.json()["version"]) == (201, 1)

    before = db_state(db_settings)
    refused = api("POST", "/api/usecases/churn/privacy/approve", "dana", json={"conditions": [POSTCODE]})
    assert error(refused, 403) == ("dana may not decide privacy on use case 'churn': requires role "
                                   "privacy_officer; dana has data_scientist")
    assert refused.json()["error"]["type"] == "PermissionDenied"
    assert db_state(db_settings) == before

    approved = api("POST", "/api/usecases/churn/privacy/approve", "pia",
                   json={"conditions": [POSTCODE], "comment": "regions only"})
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["conditions"]) == ("approved", [POSTCODE])
    started = api("POST", "/api/usecases/churn/advance", "olivia", json={"state": "in_development"})
    assert (started.json()["state"], started.json()["cycle"]) == ("in_development", 1)

    data = churn_data()
    data["privacy"]["columns"].append(PHONE)
    updated = api("PUT", "/api/usecases/churn", "ana", json=data)
    assert (updated.status_code, updated.json()["privacy"]) == (200, "v2 pending")
    versions = api("GET", "/api/usecases/churn/privacy", "dana").json()
    assert [(v["version"], v["status"]) for v in versions] == [(1, "approved"), (2, "pending")]
    with pytest.raises(GateClosed, match="DPIA v2 of 'churn' awaits .* \\(added phone\\)"):
        with session(db_settings) as s:
            require_privacy_approval(s, "churn")
    again = api("POST", "/api/usecases/churn/privacy/approve", "pia", json={"conditions": [POSTCODE]})
    assert (again.status_code, again.json()["version"]) == (200, 2)
    with session(db_settings) as s:
        assert require_privacy_approval(s, "churn").treatments["phone"].treatment == "pseudonymize"

    trail = api("GET", "/api/audit?usecase=churn", "dana").json()
    assert [(e["actor"], e["action"]) for e in trail] == [
        ("olivia", "usecase.create"), ("ana", "usecase.advance"), ("olivia", "privacy.submit"),
        ("olivia", "usecase.advance"), ("pia", "privacy.approve"), ("pia", "usecase.advance"),
        ("olivia", "usecase.advance"), ("ana", "usecase.update"), ("ana", "privacy.reopen"),
        ("pia", "privacy.approve"),
    ]
    everything = api("GET", "/api/audit", "admin").json()
    assert api("GET", "/api/audit", "dana").json() == [
        e for e in everything if e["usecase"] == "churn" or e["actor"] == "dana"]
    assert [e["action"] for e in api("GET", "/api/audit?action=token.&limit=3", "admin").json()] == [
        "token.create"] * 3
    verified = api("GET", "/api/audit/verify", "dana").json()
    assert (verified["ok"], verified["events"], verified["head"]["position"]) == (
        True, len(everything), everything[-1]["id"])


def test_tokens_over_http(db_settings, server):
    add_people(db_settings)
    api = server(db_settings)
    assert error(api("GET", "/api/me"), 401) == "missing bearer token: send 'Authorization: Bearer <token>'"
    assert error(api("GET", "/api/me", token="vl_made-up"), 401) == "unknown token"

    issued = api("POST", "/api/tokens", "dana", json={"name": "laptop", "expires_in_seconds": 3600})
    assert issued.status_code == 201, issued.text
    secret, token_id = issued.json()["token"], issued.json()["id"]
    assert api("GET", "/api/me", token=secret).json()["name"] == "dana"
    listed = api("GET", "/api/tokens", "dana")
    assert secret not in listed.text and all("token" not in t for t in listed.json())
    assert [t["name"] for t in listed.json()] == ["tests", "laptop"]

    before = db_state(db_settings)
    olivias = api("GET", "/api/tokens", "olivia").json()[0]["id"]
    for actor in ("dana", "admin"):  # a token is its holder's identity: nobody mints one for another
        assert f"{actor} may issue tokens for their own account only" in error(
            api("POST", "/api/tokens", actor, json={"user": "olivia"}), 403)
    assert "dana may not administer" in error(api("DELETE", f"/api/tokens/{olivias}", "dana"), 403)
    assert "requires role admin" in error(api("GET", "/api/tokens?all=true", "dana"), 403)
    problems = api("POST", "/api/tokens", "dana", json={"expires_in_seconds": 0})
    assert error(problems, 422) == "request is invalid (1 problem(s))"
    assert problems.json()["error"]["problems"] == ["expires_in_seconds: Input should be greater than 0, got 0"]
    assert db_state(db_settings) == before

    for_olivia = api("POST", "/api/tokens", "olivia", json={"name": "laptop"})
    assert api("GET", "/api/me", token=for_olivia.json()["token"]).json()["name"] == "olivia"
    assert len(api("GET", "/api/tokens?all=true", "admin").json()) == len(api.tokens) + 2

    assert api("DELETE", f"/api/tokens/{token_id}", "dana").json()["revoked_at"] is not None
    assert error(api("GET", "/api/me", token=secret), 401).startswith(f"token {secret[:10]}… was revoked at")
    with session(db_settings) as s:  # the clock moves past olivia's new token's expiry
        s.execute(update(ApiToken).where(ApiToken.id == for_olivia.json()["id"])
                  .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert " expired at " in error(api("GET", "/api/me", token=for_olivia.json()["token"]), 401)


def test_bad_requests_get_their_status_and_write_nothing(db_settings, server):
    formulated(db_settings)
    api = server(db_settings)
    invalid = churn_data()
    invalid["kpis"][1]["target"] = "high"
    invalid["colour"] = "blue"
    renamed = {**churn_data(), "name": "fraud"}
    before = db_state(db_settings)
    cases = [
        ("POST", "/api/usecases", "olivia", invalid, 422, "request is invalid (2 problem(s))"),
        ("POST", "/api/usecases", "olivia", churn_data(), 409, "use case 'churn' already exists"),
        ("POST", "/api/usecases", "dana", renamed, 403, "dana may not formulate use case 'fraud'"),
        ("GET", "/api/usecases/fraud", "olivia", None, 404, "use case 'fraud' does not exist"),
        ("PUT", "/api/usecases/churn", "ana", renamed, 422, "name: the body names 'fraud' but the path names 'churn'"),
        ("POST", "/api/usecases/churn/advance", "olivia", {"state": "in_production"}, 409,
         "illegal transition formulated → in_production; from formulated the allowed next states are: "
         "draft, privacy_review"),
        ("POST", "/api/usecases/churn/advance", "olivia", {"state": "shipped"}, 422, "request is invalid"),
        ("POST", "/api/usecases/churn/privacy/submit", "dave", None, 403,
         "dave may not submit privacy on use case 'churn': requires role analyst or owner"),
        ("POST", "/api/usecases/churn/privacy/approve", "pia", {}, 409, "no DPIA of 'churn' awaits a decision"),
        ("POST", "/api/usecases/churn/outcomes", "olivia", {"kpis": {"recall": "high"}}, 422, "request is invalid"),
        ("POST", "/api/users", "dana", {"name": "mallory"}, 403, "dana may not administer"),
        ("POST", "/api/users", "admin", {"name": "Eve Smith"}, 422, "request is invalid"),
        ("GET", "/api/usecases", None, None, 401, "missing bearer token"),
    ]
    for method, path, user, body, status, message in cases:
        response = api(method, path, user, json=body)
        assert message in error(response, status), (method, path)
        assert "Traceback" not in response.text
    problems = api("POST", "/api/usecases", "olivia", json=invalid).json()["error"]["problems"]
    assert problems == ['kpis[1].target: expected a number, got "high"', "colour: unknown field"]
    assert db_state(db_settings) == before


def test_the_openapi_docs_are_served(settings, server):
    add_people(settings)
    api = server(settings)
    assert "swagger-ui" in api("GET", "/docs").text
    paths = api("GET", "/openapi.json").json()["paths"]
    assert {"/api/usecases", "/api/usecases/{name}/privacy/approve", "/api/tokens", "/api/audit"} <= set(paths)


def test_an_unexpected_failure_is_a_500_with_an_incident_id(settings, server, tmp_path):
    """The same answer as serving's: 500, an id to find the trace by in the server log, no detail."""
    from valueloop.store.models import UseCase

    formulated(settings)
    api = server(settings)
    with session(settings) as s:  # a stored file the schema no longer reads: a bug, not bad input
        s.execute(update(UseCase).values(spec={"name": "churn", "secret": "olivia@example.com"}))
    broken = httpx.get(api.url + "/api/usecases/churn", headers={
        "Authorization": f"Bearer {api.tokens['olivia']}", "X-Request-Id": "incident-42"})
    assert error(broken, 500) == "internal error incident-42; the server log has the details under this id"
    assert broken.json()["error"]["type"] == "InternalError" and "olivia@example.com" not in broken.text
    assert "incident incident-42" in next(tmp_path.glob("uvicorn-*.log")).read_text()
