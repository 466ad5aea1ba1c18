"""schemathesis over the control plane's own OpenAPI on a real uvicorn (issue 14): every operation,
a bounded number of cases each, with a valid token of a member of the team: no 5xx. What it found
is kept as plain cases, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
from outcomes.support import churn_data
from server.conftest import server  # noqa: F401 - the real-uvicorn fixture of the API tests

from valueloop.outcomes.users import create_token
from valueloop.store import session

PEOPLE = ["admin", "olivia", "ana", "pia", "dana", "oscar"]
NUL = "text may not contain the NUL character (U+0000)"


def _spec(**changes: Any) -> str:
    """The churn file as a JSON body with these top-level fields changed, and 1e309 as written."""
    return httpx.Request("PUT", "/", json={**churn_data(), **changes}).content.decode().replace("1e+308", "1e309")


#: (method, path, user, query, JSON body, status, what the message says): each was a 500
FOUND = [
    ("DELETE", "/api/tokens/9223372036854775808", "olivia", {}, None, 422, "token_id: Input should be less"),
    ("POST", "/api/alerts/2147483648/ack", "oscar", {}, "{}", 422, "alert_id: Input should be less"),
    ("POST", "/api/tokens", "olivia", {}, '{"expires_in_seconds": 251606327106}', 422, "expires_in_seconds"),
    ("GET", "/api/audit", "admin", {"since": "9999-12-31T23:59:59-23:00"}, None, 422,
     "since: must lie within the years 1 to 9999 in UTC"),
    ("GET", "/api/audit", "admin", {"since": "2020-01-01T00:00:00"}, None, 200, ""),
    ("POST", "/api/usecases/churn/kpis", "olivia", {}, '{"metric": "churn_rate", "value": 0.1, '
     '"at": "2020-01-01T00:00:00"}', 201, ""),
    ("GET", "/api/audit", "admin", {"actor": "a\x00b"}, None, 422, f"query: {NUL}"),
    ("GET", "/api/usecases/a%00b", "olivia", {}, None, 422, f"path: {NUL}"),
    ("POST", "/api/tokens", "olivia", {}, '{"name": "a\\u0000b"}', 422, f"body: {NUL}"),
    ("PUT", "/api/usecases/churn", "ana", {}, _spec(title="a\x00b"), 422, f"body: {NUL}"),
    ("PUT", "/api/usecases/churn", "ana", {}, _spec(kpis=[{**churn_data()["kpis"][0], "target": 1e308}]), 422,
     "kpis[0].target: Input should be a finite number"),
    ("POST", "/api/usecases/churn/outcomes", "olivia", {}, '{"kpis": {"churn_rate": 1e309}}', 422,
     "kpis.churn_rate: Input should be a finite number"),
    ("POST", "/api/usecases", "olivia", {}, "[" * 100_000, 400, "There was an error parsing the body"),
]


def test_what_the_fuzzer_found_is_refused_not_a_500(db_settings, approved_usecase, server):  # noqa: F811
    approved_usecase(db_settings)
    api = server(db_settings)
    for method, path, user, query, body, status, message in FOUND:
        answer = httpx.request(method, api.url + path, params=query, content=body, timeout=60,
                               headers={"Authorization": f"Bearer {api.tokens[user]}",
                                        "Content-Type": "application/json"})
        assert answer.status_code == status, (method, path, query, answer.text)
        assert status < 300 or message in str(answer.json()["error"]), (method, path, answer.text)


def _aimed(document: dict[str, Any]) -> dict[str, Any]:
    """The document with path parameters that name the real use case and people as often as
    random strings, so that the cases reach past the look-up."""
    real = {"name": ["churn", *PEOPLE], "user": PEOPLE}
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in real:
                    parameter["schema"] = {"anyOf": [{"enum": real[parameter["name"]]}, parameter["schema"]]}
    return document


def test_the_control_plane_survives_fuzzing(settings, approved_usecase, server):  # noqa: F811
    import schemathesis
    from hypothesis import HealthCheck, given, settings as hypothesis_settings
    from hypothesis import strategies as st

    approved_usecase(settings)
    api = server(settings)
    schema = schemathesis.openapi.from_dict(_aimed(httpx.get(api.url + "/openapi.json").json()))
    schema.config.update(base_url=api.url)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25

    def token(user: str) -> str:
        """A fresh token per case: a case may revoke the token it was sent with."""
        with session(settings) as s:
            return create_token(s, user, "fuzz").token

    for operation in operations:
        @given(case=operation.as_strategy(), user=st.sampled_from(PEOPLE))
        @hypothesis_settings(max_examples=15, deadline=None, database=None,
                             suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case, user: str) -> None:
            response = case.call(headers={"Authorization": f"Bearer {token(user)}"}, timeout=60)
            assert response.status_code < 500, (case.method, case.formatted_path, case.query, case.body,
                                                response.text)

        fuzz()
