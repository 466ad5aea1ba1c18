"""Labels over a real uvicorn on loopback: checked against the target (a bad one is a 422 and
nothing is stored), the rows of a request of several rows labeled by index, and labels listed,
corrected and withdrawn from the command line, audited."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from deploy_support import Served
from test_serve import ROW, ROW2

from valueloop.deploy.labels import current
from valueloop.outcomes import audit
from valueloop.store import session

CLASSES = "one of 0, 1 (the classes of target 'churned')"


def _post(served: Served, path: str, user: str = "eve", **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {served.tokens[user]}"} | kwargs.pop("headers", {})  # type: ignore[operator]
    return httpx.post(served.url + path, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def _predicted(served: Served, rows: object) -> str:
    answer = _post(served, "/predict/churn", "dana", json=rows, headers={"X-Request-Id": uuid.uuid4().hex})
    assert answer.status_code == 200, answer.text
    return answer.json()["request_id"]


@pytest.mark.parametrize("bad", ["yes", [1], 2, 0.5, True, "1", {"label": 1}])
def test_a_label_that_is_not_a_class_of_the_target_is_a_422_and_nothing_is_stored(served: Served, bad: object) -> None:
    rid = _predicted(served, ROW)
    refused = _post(served, "/feedback/churn", json=[{"request_id": rid, "label": 1}, {"request_id": rid, "label": bad}])
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["problems"] == [f"[1].label: expected {CLASSES}, got {bad!r}"]
    assert "nothing was stored" in error["message"]
    assert rid not in current(served.settings, "churn").views  # not even the good label beside it


def test_a_missing_label_and_a_label_of_a_number_written_as_a_float(served: Served) -> None:
    rid = _predicted(served, ROW)
    refused = _post(served, "/feedback/churn", json=[{"request_id": rid, "label": None}])
    assert refused.json()["error"]["problems"] == ["[0].label: required, got null"]
    taken = _post(served, "/feedback/churn", json=[{"request_id": rid, "label": 1.0}])
    assert taken.json() == {"usecase": "churn", "recorded": 1, "unknown": []}
    stored = current(served.settings, "churn").views[rid].label
    assert stored == 1 and type(stored) is int  # the class itself, so every label file has one type


def test_the_rows_of_a_request_of_several_rows_are_labeled_by_index(served: Served) -> None:
    single = _predicted(served, ROW)
    several = _predicted(served, [ROW, ROW2, ROW])
    answer = _post(served, "/feedback/churn", json=[
        {"request_id": single, "label": 0},
        {"request_id": several, "row": 0, "label": 1}, {"request_id": several, "row": 2, "label": 0},
        {"request_id": f"{several}/1", "label": 1},  # the row's own id, as the log holds it
        {"request_id": several, "row": 3, "label": 1},  # no such row
    ])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"usecase": "churn", "recorded": 4, "unknown": [f"{several}/3"]}
    views = current(served.settings, "churn").views
    assert [views[r].label for r in (single, f"{several}/0", f"{several}/1", f"{several}/2")] == [0, 1, 1, 0]

    whole = _post(served, "/feedback/churn", json=[{"request_id": several, "label": 1}])
    assert whole.status_code == 422
    assert whole.json()["error"]["problems"] == [
        f"[0].request_id: request {several!r} had several rows; name the row (\"row\": 0, 1, ...) "
        f"or its id ({several!r}/0, ...)"]
    bad_rows = _post(served, "/feedback/churn", json=[{"request_id": several, "row": -1, "label": 1},
                                                      {"request_id": several, "row": "1", "label": 1}])
    assert bad_rows.json()["error"]["problems"] == ["[0].row: expected a row number (0, 1, ...), got -1",
                                                    "[1].row: expected a row number (0, 1, ...), got '1'"]


def test_labels_are_listed_corrected_and_withdrawn_by_their_roles_and_audited(served: Served, run_cli) -> None:
    rid = _predicted(served, ROW)
    assert _post(served, "/feedback/churn", json=[{"request_id": rid, "label": 1}]).status_code == 200
    listed = run_cli(served.settings, "labels", "list", "churn", "--request-id", rid, "--json", as_user="ana")
    assert listed.returncode == 0, listed.stderr
    assert [(r["label"], r["labeled_by"]) for r in json.loads(listed.stdout)] == [(1, "eve")]

    refused = run_cli(served.settings, "labels", "correct", "churn", rid, "0", as_user="eve")
    assert refused.returncode == 6
    assert "eve may not manage labels on use case 'churn': requires role data_scientist or operations" in refused.stderr
    wrong = run_cli(served.settings, "labels", "correct", "churn", rid, "yes", as_user="dana")
    assert wrong.returncode == 2 and f"label: expected {CLASSES}, got 'yes'" in wrong.stderr
    corrected = run_cli(served.settings, "labels", "correct", "churn", rid, "0", as_user="dana")
    assert corrected.returncode == 0, corrected.stderr
    assert current(served.settings, "churn").views[rid].label == 0

    deleted = run_cli(served.settings, "labels", "delete", "churn", rid, as_user="dana")
    assert deleted.returncode == 0, deleted.stderr
    assert rid not in current(served.settings, "churn").views
    again = run_cli(served.settings, "labels", "delete", "churn", rid, as_user="dana")
    assert again.returncode == 3 and "has no label in 'churn'" in again.stderr
    with session(served.settings) as s:
        events = [e for e in audit.events(s, usecase="churn") if e.object_id == rid]
    assert [(e.action, e.actor, e.before["label"], e.after) for e in events] == [
        ("label.correct", "dana", 1, {"label": 0}), ("label.delete", "dana", 0, None)]
