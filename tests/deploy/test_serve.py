"""REST serving over a real uvicorn on loopback: protocols, validation, limits, auth, metrics."""

from __future__ import annotations

import json
import re
import threading

import httpx
import numpy as np
import pytest
from deploy_support import Served, promote_version, served_state, set_deploy, wait_for

ROW = {"birth_date": 1980, "postcode": "12", "contract": "month-to-month", "payment_method": "invoice",
       "tenure_months": 3, "monthly_charges": 80.5, "support_calls": 4, "total_charges": 241.5}
ROW2 = ROW | {"contract": "two_year", "tenure_months": 40, "support_calls": 0, "total_charges": 3000.0}


def _auth(served: Served, user: str = "dana") -> dict[str, str]:
    return {"Authorization": f"Bearer {served.tokens[user]}"}


def _post(served: Served, path: str, **kwargs: object) -> httpx.Response:
    headers = _auth(served) | kwargs.pop("headers", {})  # type: ignore[operator]
    return httpx.post(served.url + path, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def test_health_and_model_metadata(served: Served) -> None:
    assert httpx.get(served.url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(served.url + "/v2/health/ready").status_code == 200
    assert httpx.get(served.url + "/v2/models/churn/ready", headers=_auth(served)).json()["ready"] is True
    meta = httpx.get(served.url + "/v2/models/churn", headers=_auth(served)).json()
    assert meta["name"] == "churn" and meta["versions"][0] == str(served.versions[0])
    contract = next(i for i in meta["inputs"] if i["name"] == "contract")
    assert contract["datatype"] == "BYTES"
    assert sorted(contract["parameters"]["categories"]) == ["month-to-month", "one_year", "two_year"]


def test_protocols_agree_with_mlflow_pyfunc(served: Served) -> None:
    import pandas as pd

    from valueloop.learn.registry import load_model
    from valueloop.store import session

    with session(served.settings) as s:
        pyfunc = load_model(s, served.settings, "churn", served.versions[0])
    frame = pd.DataFrame([ROW, ROW2])
    numbers = [n for n, t in pyfunc.metadata.get_input_schema().input_types_dict().items()
               if t.name in ("double", "float")]
    expected = pyfunc.predict(frame.astype({n: float for n in numbers})).tolist()

    payloads = [
        {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values()), list(ROW2.values())]}},
        {"dataframe_records": [ROW, ROW2]},
        {"instances": [ROW, ROW2]},
        {"inputs": {k: [ROW[k], ROW2[k]] for k in ROW}},
    ]
    for path in ("/invocations/churn", "/models/churn/invocations"):
        for payload in payloads:
            answer = _post(served, path, json=payload)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            np.testing.assert_allclose(body["predictions"], expected, rtol=1e-9, err_msg=str(payload))
            assert body["model_version"] == str(served.versions[0]) and body["request_id"]
    csv = frame.to_csv(index=False)
    answer = _post(served, "/invocations/churn", content=csv, headers={"Content-Type": "text/csv"})
    np.testing.assert_allclose(answer.json()["predictions"], expected, rtol=1e-9)

    labels = [int(p[1] > 0.5) for p in expected]
    plain = _post(served, "/predict/churn", json=[ROW, ROW2]).json()
    assert plain["predictions"] == labels
    assert plain["probabilities"] == pytest.approx([p[1] for p in expected])
    one = _post(served, "/predict/churn", json=ROW, headers={"X-Request-Id": "mine-1"})
    assert one.headers["x-request-id"] == "mine-1" and one.json()["request_id"] == "mine-1"
    assert one.headers["x-model-version"] == str(served.versions[0])

    # an Open Inference Protocol client: one tensor per field, and one [N, F] tensor
    kinds = {"birth_date": "INT64", "tenure_months": "INT64", "support_calls": "INT64",
             "monthly_charges": "FP64", "total_charges": "FP64"}
    tensors = [{"name": k, "shape": [2], "datatype": kinds.get(k, "BYTES"), "data": [ROW[k], ROW2[k]]}
               for k in ROW]
    oip = _post(served, "/v2/models/churn/infer", json={"id": "oip-1", "inputs": tensors}).json()
    assert oip["id"] == "oip-1" and oip["model_name"] == "churn"
    outputs = {o["name"]: o for o in oip["outputs"]}
    assert outputs["predict"]["data"] == labels and outputs["predict"]["datatype"] == "INT64"
    assert outputs["probability"]["data"] == pytest.approx([p[1] for p in expected])


def test_a_version_is_answered_by_that_version(served: Served) -> None:
    """``/v2/models/{name}/versions/{v}/infer`` answers with version v, the champion's or the
    challenger's, and says so in the body and in X-Model-Version."""
    first, second = served.versions
    promote_version(served.settings, second, "challenger")  # served beside the champion; no canary
    wait_for(lambda: served_state(served.url, served.tokens["dana"])[1] == str(second))
    for version in (first, second):
        answer = _post(served, f"/v2/models/churn/versions/{version}/infer",
                       json={"id": f"v-{version}", "inputs": tensors_of(ROW)})
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-model-version"] == str(version)
        body = answer.json()
        assert (body["model_name"], body["model_version"], body["id"]) == ("churn", str(version), f"v-{version}")
        meta = httpx.get(f"{served.url}/v2/models/churn/versions/{version}", headers=_auth(served)).json()
        assert meta["versions"] == [str(first), str(second)]
    unversioned = _post(served, "/v2/models/churn/infer", json={"inputs": tensors_of(ROW)})
    assert unversioned.json()["model_version"] == unversioned.headers["x-model-version"] == str(first)
    gone = _post(served, "/v2/models/churn/versions/99/infer", json={"inputs": tensors_of(ROW)})
    assert gone.status_code == 404  # the protocol's error body: a string
    assert gone.json() == {"error": f"model 'churn' version 99 is not served; served: {first}, {second}", "problems": []}


#: the columns of the CRM export, which a client may send instead of the features
RAW_FIELDS = ("customer_id, name, email, birth_date, postcode, contract, tenure_months, monthly_charges, "
              "support_calls, payment_method, churned")


def test_bad_input_gets_a_4xx_naming_field_and_rule(served: Served) -> None:
    fields = ", ".join(ROW)  # the signature's order
    cases = [
        (ROW | {"tenure_months": "three"}, "[0].tenure_months: expected an integer, got 'three'"),
        ({k: v for k, v in ROW.items() if k != "contract"}, "[0].contract: required field is missing"),
        (ROW | {"contract": "lifetime"},
         "[0].contract: unknown category; known: month-to-month, one_year, two_year, got 'lifetime'"),
        (ROW | {"support_calls": True}, "[0].support_calls: expected an integer, got True"),
        (ROW | {"shoe_size": 44}, f"[0].shoe_size: unknown field; the model's fields are {fields}, or those of "
                                  f"a raw record of customers: {RAW_FIELDS}"),
        (ROW | {"monthly_charges": None}, "[0].monthly_charges: required, must not be null, got None"),
    ]
    for row, problem in cases:
        answer = _post(served, "/predict/churn", json=row)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == {"type": "InvalidInput", "message": "input is invalid (1 problem(s))",
                                          "problems": [problem]}
    several = _post(served, "/predict/churn", json=[ROW, ROW | {"contract": "lifetime"}, ROW,
                                                     ROW | {"tenure_months": 2.5, "support_calls": "x"}])
    assert several.status_code == 422
    assert several.json()["error"]["problems"] == [  # each problem by its row, field and rule
        "[1].contract: unknown category; known: month-to-month, one_year, two_year, got 'lifetime'",
        "[3].tenure_months: expected an integer, got 2.5", "[3].support_calls: expected an integer, got 'x'"]
    nan = _post(served, "/predict/churn", content=json.dumps(ROW | {"monthly_charges": float("nan")}))
    assert nan.status_code == 422
    assert nan.json()["error"]["problems"] == ["[0].monthly_charges: NaN is not allowed in a required column, got nan"]
    wrong_type = _post(served, "/v2/models/churn/infer", json={"inputs": [
        {"name": "contract", "shape": [1], "datatype": "FP64", "data": [1.0]}]})
    assert wrong_type.status_code == 400  # the protocol's status for a request it cannot take
    assert wrong_type.json() == {
        "error": "inference request is invalid (1 problem(s)): inputs[0] (contract).datatype: FP64 does not fit "
                 "column type string; use BYTES",
        "problems": ["inputs[0] (contract).datatype: FP64 does not fit column type string; use BYTES"]}
    for body, status in [(b"{not json", 400), (b"", 422), (b"[]", 422), (b'"a string"', 422)]:
        answer = _post(served, "/predict/churn", content=body)
        assert answer.status_code == status, (body, answer.text)
        assert "Traceback" not in answer.text
    answer = _post(served, "/invocations/churn", json={"dataframe_records": [ROW], "instances": [ROW]})
    assert answer.status_code == 422 and "exactly one of" in answer.text
    nope = _post(served, "/predict/nope", json=ROW)
    assert nope.status_code == 404
    assert nope.json()["error"]["message"] == "model 'nope' is not served (no champion); served to dana: churn"
    big = _post(served, "/predict/churn", content=b"[" + b" " * 10_000_000 + b"]")
    assert big.status_code == 413
    assert _post(served, "/predict/churn", json=ROW).status_code == 200  # still serving


def tensors_of(row: dict[str, object]) -> list[dict[str, object]]:
    return [{"name": k, "shape": [1], "datatype": "FP64" if isinstance(v, float) else
             "INT64" if isinstance(v, int) else "BYTES", "data": [v]} for k, v in row.items()]


def test_tokens_are_required_and_checked(served: Served) -> None:
    anonymous = httpx.post(served.url + "/predict/churn", json=ROW)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["error"]["message"] == "missing bearer token: send 'Authorization: Bearer <token>'"
    bad = httpx.post(served.url + "/predict/churn", json=ROW, headers={"Authorization": "Bearer vl_nope"})
    assert bad.status_code == 401 and "unknown token" in bad.json()["error"]["message"]
    hidden = _post(served, "/predict/churn", json=ROW, headers=_auth(served, "zoe"))
    assert hidden.status_code == 404  # no role: not even the model's name is confirmed
    assert hidden.json()["error"]["message"] == "model 'churn' is not served (no champion); served to zoe: none"


def test_metrics_are_exposed(served: Served) -> None:
    _post(served, "/predict/churn", json=ROW)
    assert httpx.get(served.url + "/metrics").status_code == 401
    text = httpx.get(served.url + "/metrics", headers=_auth(served)).text
    version = served.versions[0]
    assert f'valueloop_requests_total{{model_version="{version}",status="200",usecase="churn"}}' in text
    for name in ("valueloop_request_duration_seconds_bucket", "valueloop_batch_size_bucket",
                 "valueloop_requests_in_flight", "valueloop_model_load_seconds_count",
                 "valueloop_model_swaps_total", "valueloop_prediction_log_dropped_total"):
        assert name in text, name


def test_an_unexpected_failure_is_a_500_with_an_id_never_a_400(served: Served) -> None:
    """A failure valueloop did not expect is the server's fault: 500, an id to find the trace by
    in the log, and no detail. It was a 400, which told the client that it had erred."""
    import time
    import uuid

    rid = f"broken-{uuid.uuid4().hex[:8]}"
    dana, eve = ({"Authorization": f"Bearer {served.tokens[u]}"} for u in ("dana", "eve"))
    assert httpx.post(f"{served.url}/predict/churn", json=ROW, headers=dana | {"X-Request-Id": rid}).status_code == 200
    labels = served.settings.home / "predictions" / "churn" / "labels"
    kept = labels.with_name("labels.kept")
    labels.parent.mkdir(parents=True, exist_ok=True)
    if labels.exists():
        labels.rename(kept)
    labels.write_text("a file where the labels' folder should be")  # writing a label now fails
    try:
        deadline = time.monotonic() + 20  # until the prediction reaches the log
        while True:
            failed = httpx.post(f"{served.url}/feedback/churn", json=[{"request_id": rid, "label": 1}],
                                headers=eve | {"X-Request-Id": f"{rid}-feedback"})
            if failed.json().get("unknown") != [rid] or time.monotonic() > deadline:
                break
    finally:
        labels.unlink()
        if kept.exists():
            kept.rename(labels)
    assert failed.status_code == 500, failed.text
    error = failed.json()["error"]
    assert error["type"] == "InternalError"
    assert error["message"] == f"internal error {rid}-feedback; the server log has the details under this id"
    assert "labels" not in failed.text and "Traceback" not in failed.text


def test_a_prediction_past_the_use_cases_timeout_is_a_504(served: Served) -> None:
    """A timeout of a microsecond, which no prediction meets: a request alone is predicted at
    once on the event loop, concurrent ones wait in the batcher's queue (max_wait_ms is a
    second); either way the answer is a 504 naming the timeout, and a normal timeout serves again."""
    set_deploy(served.settings, timeout=1e-6, max_wait_ms=1000)
    wait_for(lambda: served_state(served.url, served.tokens["dana"])[2]["timeout"] == 1e-6)
    answers = [_post(served, "/predict/churn", json=ROW)]

    def concurrent() -> None:
        answers.append(_post(served, "/predict/churn", json=ROW))

    threads = [threading.Thread(target=concurrent) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 9
    for answer in answers:
        assert answer.status_code == 504, answer.text
        assert answer.json()["error"] == {"type": "TimedOut", "problems": [],
                                          "message": "prediction took longer than the use case's timeout of 1e-06 s"}
    text = httpx.get(served.url + "/metrics", headers=_auth(served)).text
    timed_out = re.search(rf'valueloop_requests_total{{model_version="{served.versions[0]}",status="504",'
                          r'usecase="churn"} ([\d.]+)', text)
    assert timed_out is not None and float(timed_out[1]) >= 9
    set_deploy(served.settings, timeout=10)
    wait_for(lambda: served_state(served.url, served.tokens["dana"])[2]["timeout"] == 10)
    assert _post(served, "/predict/churn", json=ROW).status_code == 200


def test_a_limited_risk_use_case_tells_people_with_every_prediction(served: Served) -> None:
    """The AI Act's transparency notice of the approved DPIA (churn is limited risk) is a header of
    every prediction, whichever protocol asked."""
    from valueloop.outcomes.usecases import get_usecase
    from valueloop.store import session

    with session(served.settings) as s:
        notice = get_usecase(s, "churn").spec["privacy"]["ai"]["transparency_notice"]
    for path, payload in (("/predict/churn", ROW), ("/invocations/churn", {"dataframe_records": [ROW]})):
        answer = _post(served, path, json=payload)
        assert answer.status_code == 200 and answer.headers["x-ai-transparency"] == notice


def test_a_notice_is_one_header_line_whatever_it_holds() -> None:
    from valueloop.deploy.app import header_text

    assert header_text("Über 100%\r\nSet-Cookie: x") == b"%C3%9Cber 100%25%0D%0ASet-Cookie: x"


def test_a_serving_process_hands_the_interpreter_lock_over_quickly(served: Served) -> None:
    """The prediction log's writer and the registry's poll run in threads of the serving process
    and hold the interpreter lock for milliseconds at a time; a request that arrives meanwhile
    waited for it up to CPython's switch interval, 5 ms, in the p99 at one connection. While
    serving, a waiting thread gets the lock within 0.5 ms."""
    import sys

    assert sys.getswitchinterval() == pytest.approx(0.0005)
