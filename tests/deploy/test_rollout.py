"""Zero-downtime swaps under load, rollback, canary and shadow rollouts, the prediction log and
feedback, all against the real server and the Learn phase's registry."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pyarrow.compute as pc
import pytest
from deploy_support import Served, wait_for
from test_serve import ROW

from valueloop.deploy.predlog import PredictionLog
from valueloop.deploy.routing import to_challenger


SOAK_SECONDS = 30


def _client(served: Served, user: str = "dana") -> httpx.Client:
    return httpx.Client(base_url=served.url, timeout=30,
                        headers={"Authorization": f"Bearer {served.tokens[user]}"})


def _set_deploy(served: Served, **deploy: Any) -> None:
    from valueloop.outcomes.spec import parse_spec
    from valueloop.outcomes.usecases import get_usecase, update_usecase
    from valueloop.store import session

    with session(served.settings) as s:
        data = get_usecase(s, "churn").spec
        data["deploy"] = deploy or None
        update_usecase(s, "olivia", parse_spec(data))  # a rollout is the owner's decision


def _promote(served: Served, version: int, alias: str = "champion") -> None:
    from valueloop.learn.registry import promote
    from valueloop.store import session

    with session(served.settings) as s:
        promote(s, served.settings, "dana", "churn", version, alias)


def _served_versions(client: httpx.Client) -> dict[str, Any]:
    return next(m for m in client.get("/models").json() if m["name"] == "churn")


def test_swaps_and_rollbacks_under_load_drop_no_request(served: Served, run_cli: Any) -> None:
    from valueloop.deploy.rollback import rollback
    from valueloop.errors import PermissionDenied
    from valueloop.store import session

    first, second = served.versions
    stop, statuses, versions = threading.Event(), Counter(), Counter()
    started = time.monotonic()

    def load() -> None:
        with _client(served) as client:
            while not stop.is_set():
                answer = client.post("/predict/churn", json=ROW)
                statuses[answer.status_code] += 1
                versions[answer.json().get("model_version")] += 1

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        with _client(served) as client:
            for _ in range(10):  # issue 5: 10 promotions and 10 rollbacks under load
                _promote(served, second)
                wait_for(lambda: _served_versions(client)["champion"] == str(second))
                with session(served.settings) as s:
                    done = rollback(s, served.settings, "oscar", "churn")
                assert (done.rolled_back, done.champion) == (second, first)
                wait_for(lambda: _served_versions(client)["champion"] == str(first))
            stop.wait(max(0.0, SOAK_SECONDS - (time.monotonic() - started)))  # the load lasts 30 s at least
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert set(statuses) == {200}, statuses
    assert versions[str(first)] > 0 and versions[str(second)] > 0, versions
    assert sum(statuses.values()) > 1000

    with pytest.raises(PermissionDenied, match="requires role data_scientist or operations"):
        with session(served.settings) as s:
            rollback(s, served.settings, "ana", "churn")
    _promote(served, second)
    done = run_cli(served.settings, "rollback", "churn", "--json", as_user="oscar")
    assert done.returncode == 0, done.stderr
    assert f'"champion": {first}' in done.stdout


def test_canary_share_is_kept_and_sticky() -> None:
    keys = [uuid.uuid4().hex for _ in range(10_000)]
    for share in (0.05, 0.2, 0.5):
        assert abs(sum(to_challenger(share, k) for k in keys) / len(keys) - share) < 0.02
        assert abs(sum(to_challenger(share) for _ in keys) / len(keys) - share) < 0.02
    assert all(to_challenger(0.3, k) == to_challenger(0.3, k) for k in keys[:100])
    assert not any(to_challenger(0.0, k) for k in keys) and all(to_challenger(1.0, k) for k in keys)


def test_canary_and_shadow_over_http(served: Served) -> None:
    first, second = served.versions
    plog = PredictionLog(served.settings, "churn")
    with _client(served) as client:
        _promote(served, second, "challenger")
        _set_deploy(served, canary=0.3)
        wait_for(lambda: _served_versions(client)["challenger"] == str(second)
                 and _served_versions(client)["deploy"]["canary"] == 0.3)
        answered = Counter(client.post("/predict/churn", json=ROW, headers={"X-Request-Key": f"k{i}"})
                           .json()["model_version"] for i in range(400))
        assert abs(answered[str(second)] / 400 - 0.3) < 0.1, answered
        sticky = {client.post("/predict/churn", json=ROW, headers={"X-Request-Key": "customer-7"})
                  .json()["model_version"] for _ in range(20)}
        assert len(sticky) == 1

        _set_deploy(served, shadow=True)
        wait_for(lambda: _served_versions(client)["deploy"]["shadow"] is True)
        ids = [f"shadow-{uuid.uuid4().hex[:8]}" for _ in range(30)]
        for rid in ids:
            answer = client.post("/predict/churn", json=ROW, headers={"X-Request-Id": rid})
            assert answer.json()["model_version"] == str(first)  # never the shadow's answer

        def logged() -> bool:
            table = plog.read()
            mine = table.filter(pc.is_in(table["request_id"], pc.cast(ids, "string")))
            return mine.num_rows == 60
        wait_for(logged)
        table = plog.read()
        mine = table.filter(pc.is_in(table["request_id"], pc.cast(ids, "string")))
        pairs = Counter(zip(mine["source"].to_pylist(), mine["model_version"].to_pylist()))
        assert pairs == {("rest", str(first)): 30, ("shadow", str(second)): 30}
        assert set(mine["contract"].to_pylist()) == {ROW["contract"]}  # features as columns
        _set_deploy(served)
        wait_for(lambda: _served_versions(client)["deploy"]["shadow"] is False)


def test_feedback_by_request_id(served: Served) -> None:
    with _client(served) as client:
        client.post("/predict/churn", json=ROW, headers={"X-Request-Id": "fb-1"})
    with _client(served, "eve") as client:  # an expert may label; dana, who trains, may not
        answer = client.post("/feedback/churn", json=[{"request_id": "fb-1", "label": 1},
                                                      {"request_id": "never-seen", "label": 0}])
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"usecase": "churn", "recorded": 1, "unknown": ["never-seen"]}
        assert client.post("/feedback/churn", json=[{"request_id": "fb-1"}]).status_code == 422
    labels = PredictionLog(served.settings, "churn").read_labels()
    assert "fb-1" in labels["request_id"].to_pylist()
