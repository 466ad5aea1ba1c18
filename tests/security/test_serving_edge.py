"""The serving edge (``valueloop serve``) as an anonymous caller and a hostile member attack it,
over real HTTP to a real uvicorn: issue 14's attacks on serving, each refused."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from deploy_support import make_usecase, start_server, train_version

from valueloop.config import Settings

ROW = {"birth_date": 1980, "postcode": "12", "contract": "month-to-month", "payment_method": "invoice",
       "tenure_months": 3, "monthly_charges": 80.5, "support_calls": 4, "total_charges": 241.5}
#: every route that is not a probe, with an unknown name where the route takes one
GUARDED = [("POST", "/predict/churn"), ("POST", "/predict/nope"), ("POST", "/invocations/nope"),
           ("POST", "/models/nope/invocations"), ("POST", "/v2/models/nope/infer"),
           ("POST", "/v2/models/churn/versions/1/infer"), ("GET", "/v2/models/nope"),
           ("GET", "/v2/models/churn/ready"), ("GET", "/v2/models/nope/versions/1/ready"),
           ("POST", "/feedback/churn"), ("POST", "/feedback/nope"), ("GET", "/models"), ("GET", "/metrics"),
           ("GET", "/no/such/route")]


@dataclass
class Edge:
    settings: Settings
    url: str
    tokens: dict[str, str]

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def post(self, path: str, user: str = "dana", **kwargs: object) -> httpx.Response:
        headers = self.auth(user) | kwargs.pop("headers", {})  # type: ignore[operator]
        return httpx.post(self.url + path, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def get(self, path: str, user: str = "dana") -> httpx.Response:
        return httpx.get(self.url + path, headers=self.auth(user), timeout=30)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, new_settings: Callable[[Path], Settings]) -> Iterator[Edge]:
    """churn's champion served with authentication on; tokens for dana (data scientist: may call
    the model, may not label), eve (domain expert: may label) and zoe (no role on churn)."""
    from valueloop.outcomes.users import NewUser, add_user, create_token
    from valueloop.store import session

    root = tmp_path_factory.mktemp("edge")
    settings = new_settings(root / "home")
    make_usecase(settings, root / "workspace")
    train_version(settings, "champion")
    with session(settings) as s:
        add_user(s, "admin", NewUser(name="zoe"))
        tokens = {u: create_token(s, u, f"t-{uuid.uuid4().hex[:6]}").token for u in ("dana", "eve", "zoe")}
    server, thread, url = start_server(settings)
    yield Edge(settings, url, tokens)
    server.should_exit = True  # type: ignore[attr-defined]
    thread.join(10)


def _call(edge: Edge, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body = json.dumps(ROW) if method == "POST" else None
    return httpx.request(method, edge.url + path, headers=headers, content=body, timeout=30)


def test_no_route_answers_or_names_a_model_before_the_token_is_checked(edge: Edge) -> None:
    """Attacks 6.1 and 6.2: a 404 listed the served models, /models and /metrics were open."""
    for headers in ({}, {"Authorization": "Bearer vl_forged"}, {"Authorization": "Basic YTpi"}):
        for method, path in GUARDED:
            answer = _call(edge, method, path, headers)
            assert answer.status_code == 401, (method, path, headers, answer.text)
            assert "churn" not in answer.text.replace(path, ""), (path, answer.text)
    for path in ("/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready", "/v2"):
        answer = httpx.get(edge.url + path)
        assert answer.status_code == 200 and "churn" not in answer.text, (path, answer.text)
    assert httpx.get(edge.url + "/health/ready").json() == {"ready": True}


def test_a_user_sees_only_the_models_of_use_cases_they_are_a_member_of(edge: Edge) -> None:
    assert [m["name"] for m in edge.get("/models").json()] == ["churn"]
    assert edge.get("/models", "zoe").json() == []
    unknown = edge.post("/predict/nope", json=ROW)
    assert unknown.status_code == 404 and "churn" in unknown.text  # dana may know churn
    for path in ("/predict/nope", "/predict/churn", "/v2/models/churn", "/v2/models/churn/ready"):
        answer = edge.post(path, "zoe", json=ROW) if "predict" in path else edge.get(path, "zoe")
        assert answer.status_code == 404 and "served to zoe: none" in answer.text, (path, answer.text)
    edge.post("/predict/churn", json=ROW)
    assert 'usecase="churn"' in edge.get("/metrics").text
    assert 'usecase="churn"' not in edge.get("/metrics", "zoe").text


def test_unknown_model_names_add_no_metric_series(edge: Edge) -> None:
    """Attack 6.3: 20,000 anonymous requests to new names grew /metrics to 18 MB."""
    before = len(edge.get("/metrics").text)
    names = [f"m{uuid.uuid4().hex}" + "x" * 2000 for _ in range(30)]
    for name in names:
        httpx.post(f"{edge.url}/predict/{name}", json=ROW, timeout=30)
        edge.post(f"/predict/{name}", json=ROW)
        edge.post(f"/v2/models/churn/versions/{name}/infer", json=ROW)
    text = edge.get("/metrics").text
    assert not any(name in text for name in names)
    assert 'usecase="unknown"' in text
    assert len(text) < before + 5_000


def _raw(edge: Edge, method: str, path: str, headers: dict[str, str]) -> bytes:
    """Send the head of a request that declares 200 MB of body and only 1 KB of it; the answer
    must come without the server waiting for (or reading) the rest."""
    port = int(edge.url.rsplit(":", 1)[1])
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" \
           f"Content-Length: 200000000\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head.encode() + b"[" + b" " * 1023)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer


def test_limits_and_auth_come_before_the_body_is_read(edge: Edge) -> None:
    """Attack 6.4: every route answers a huge body before reading it: 401 without a token,
    404 for a model the caller may not see, 413 past the limit."""
    for method, path in GUARDED:
        assert _raw(edge, method, path, {}).startswith(b"HTTP/1.1 401"), path
    for path in ("/predict/churn", "/feedback/churn", "/invocations/churn", "/v2/models/churn/infer"):
        assert _raw(edge, "POST", path, edge.auth("zoe")).startswith(b"HTTP/1.1 404"), path
        assert _raw(edge, "POST", path, edge.auth("eve")).startswith(b"HTTP/1.1 413"), path


def test_non_finite_and_overflowing_numbers_are_refused_by_name(edge: Edge) -> None:
    """Attack 6.5: Infinity or 1e309 in a double gave 500, 10^20 in an integer field 200."""
    row = json.dumps(ROW)
    cases = [
        (row.replace("80.5", "Infinity"), "[0].monthly_charges: must be a finite number"),
        (row.replace("80.5", "-Infinity"), "[0].monthly_charges: must be a finite number"),
        (row.replace("80.5", "1e309"), "[0].monthly_charges: must be a finite number"),
        (row.replace("80.5", "1" + "0" * 400), "[0].monthly_charges: must be a finite number"),
        (row.replace(": 3,", ": 100000000000000000000,"), "[0].tenure_months: must be a 64-bit integer"),
        (row.replace(": 3,", ": 1e300,"), "[0].tenure_months: must be a 64-bit integer"),
    ]
    for body, problem in cases:
        for path, wrap in (("/predict/churn", "{}"), ("/invocations/churn", '{{"dataframe_records": [{}]}}')):
            answer = edge.post(path, content=wrap.format(body), headers={"Content-Type": "application/json"})
            assert answer.status_code == 422, (body, answer.text)
            assert any(p.startswith(problem) for p in answer.json()["error"]["problems"]), answer.text
    csv = ",".join(ROW) + "\n" + ",".join(str(v) for v in (ROW | {"monthly_charges": "inf"}).values())
    answer = edge.post("/invocations/churn", content=csv, headers={"Content-Type": "text/csv"})
    assert answer.status_code == 422 and "[0].monthly_charges: must be a finite number" in answer.text
    assert edge.post("/predict/churn", json=ROW).status_code == 200


def test_one_bad_record_never_costs_the_logger_the_others(settings: Settings) -> None:
    """Attack 6.5: one record with 10^20 made the logger drop every record of its batch."""
    from valueloop.deploy.predlog import AsyncPredictionLogger, PredictionLog

    plog = PredictionLog(settings, "churn")
    logger = AsyncPredictionLogger(plog, max_seconds=60)
    for i in range(10):
        features = {"tenure_months": 10**20 if i == 4 else i, "monthly_charges": float("inf") if i == 7 else 1.0}
        logger.log({"request_id": f"r{i}", "model_version": "1", "prediction": 0, **features})
    logger.flush()
    logger.close()
    assert sorted(plog.read()["request_id"].to_pylist()) == [f"r{i}" for i in range(10) if i != 4]


def test_a_revoked_token_stops_working_within_a_second(edge: Edge) -> None:
    """Attack 6.9: a revoked token went on working on serve for 9.5 s."""
    from valueloop.outcomes.users import create_token, revoke_token
    from valueloop.store import session

    with session(edge.settings) as s:
        issued = create_token(s, "dana", "soon-revoked")
    headers = {"Authorization": f"Bearer {issued.token}"}
    assert edge.post("/predict/churn", json=ROW, headers=headers).status_code == 200
    with session(edge.settings) as s:
        revoke_token(s, "dana", issued.id)
    time.sleep(1.0)
    answer = edge.post("/predict/churn", json=ROW, headers=headers)
    assert answer.status_code == 401 and "revoked" in answer.text


def test_a_client_guessing_tokens_is_throttled(edge: Edge) -> None:
    """Issue 14: token attempts are rate-limited; a guesser is refused before the database is asked."""
    server, thread, url = start_server(edge.settings)  # a server of its own: its own count of failures
    try:
        guesses = [httpx.post(url + "/predict/churn", json=ROW, headers={"Authorization": f"Bearer vl_guess{i}"})
                   for i in range(21)]
        assert [g.status_code for g in guesses] == [401] * 20 + [429]
        assert int(guesses[-1].headers["retry-after"]) >= 1 and "too many failed" in guesses[-1].text
        right = httpx.post(url + "/predict/churn", json=ROW, headers=edge.auth("dana"))
        assert right.status_code == 429  # while it waits, a right token tells the client nothing either
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(10)


def test_labels_need_the_label_permission_and_record_who_sent_them(edge: Edge) -> None:
    """Attack 6.10: any member who could view posted labels, and no actor was kept."""
    from valueloop.deploy.labels import current

    rid = f"edge-{uuid.uuid4().hex[:8]}"
    assert edge.post("/predict/churn", json=ROW, headers={"X-Request-Id": rid}).status_code == 200
    refused = edge.post("/feedback/churn", json=[{"request_id": rid, "label": 1}])
    assert refused.status_code == 403 and "may not label" in refused.text
    accepted = edge.post("/feedback/churn", "eve", json=[{"request_id": rid, "label": 1}])
    assert accepted.status_code == 200 and accepted.json()["recorded"] == 1, accepted.text
    labels = current(edge.settings, "churn").views.values()
    assert [(v.request_id, v.label, v.labeled_by) for v in labels] == [(rid, 1, "eve")]


def _row_schema(metadata: dict[str, object]) -> dict[str, object]:
    """A JSON schema of one row of the model, from its Open Inference Protocol metadata."""
    types = {"FP64": {"type": "number"}, "FP32": {"type": "number"}, "INT64": {"type": "integer"},
             "INT32": {"type": "integer"}, "BOOL": {"type": "boolean"}}
    fields = {i["name"]: types.get(i["datatype"]) or ({"enum": i["parameters"]["categories"]}
                                                      if "categories" in i["parameters"] else {"type": "string"})
              for i in metadata["inputs"]}  # type: ignore[attr-defined]
    return {"type": "object", "properties": fields, "required": list(fields), "additionalProperties": False}


def test_serving_publishes_its_openapi_and_survives_fuzzing(edge: Edge, tmp_path: Path) -> None:
    """Issue 14: schemathesis over serving's own OpenAPI with a valid token, bounded: no 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    document = httpx.get(edge.url + "/openapi.json").json()
    assert document["openapi"].startswith("3.") and "/predict/{name}" in document["paths"]
    # aim the fuzzer at the served model, its version and its fields, not at random names only
    components = document["components"]
    components["parameters"]["name"]["schema"] = {"enum": ["churn", "nope"]}
    components["parameters"]["version"]["schema"] = {"enum": ["1", "99"]}
    row = _row_schema(edge.get("/v2/models/churn").json())
    components["schemas"]["Rows"] = {"oneOf": [row, {"type": "array", "items": row, "minItems": 1, "maxItems": 3}]}
    components["schemas"]["MLflowRequest"]["properties"]["dataframe_records"]["items"] = row
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=edge.url)
    headers = edge.auth("eve")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call(headers=headers, timeout=30)
            assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text)

        fuzz()
