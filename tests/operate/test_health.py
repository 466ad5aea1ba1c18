"""Technical health from the metrics of a real ``valueloop serve``: requests, error rate and
latency per use case after real traffic with errors; an unreachable server, or the serving
port's token-guarded /metrics, is reported, not raised."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from operate.support import free_port

from valueloop.config import Settings
from valueloop.operate.health import scrape

ROW = {"birth_date": 1980, "postcode": "12", "contract": "month-to-month", "payment_method": "invoice",
       "tenure_months": 3, "monthly_charges": 80.5, "support_calls": 4, "total_charges": 241.5}


@dataclass
class Serving:
    url: str
    metrics_url: str
    token: str


@pytest.fixture
def serving(settings: Settings, in_production: Path, tmp_path: Path) -> Iterator[Serving]:
    """``valueloop serve`` with tokens on, /metrics also on a loopback port, over churn's champion."""
    from deploy_support import wait_until_ready

    from valueloop.outcomes.users import create_token
    from valueloop.store import session

    with session(settings) as s:
        token = create_token(s, "dana", "health").token
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VALUELOOP_", "PROMETHEUS_"))}
    env.update(VALUELOOP_HOME=str(settings.home), VALUELOOP_DATABASE_URL=settings.database_url,
               VALUELOOP_MLFLOW_URI=settings.mlflow_uri, VALUELOOP_ARTIFACT_ROOT=settings.artifact_root)
    proc = subprocess.Popen([sys.executable, "-m", "valueloop", "serve", "--port", str(port),
                             "--metrics-port", str(metrics_port)],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, proc)
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        yield Serving(url, f"http://127.0.0.1:{metrics_port}/metrics", token)
    finally:
        proc.terminate()
        proc.wait(30)


def test_error_rate_and_latency_of_one_use_case_from_the_served_metrics(serving: Serving) -> None:
    """12 answers, 6 errors of three kinds, and traffic to a model that is not served (not
    churn's); health reads churn's error rate and the latency of its answers from the loopback
    metrics port, and says why the serving port's /metrics is not enough."""
    dana = {"Authorization": f"Bearer {serving.token}"}
    slowest = 0.0
    with httpx.Client(base_url=serving.url, timeout=30) as client:
        for _ in range(12):
            started = time.perf_counter()
            assert client.post("/predict/churn", json=ROW, headers=dana).status_code == 200
            slowest = max(slowest, time.perf_counter() - started)
        for bad in (ROW | {"contract": "lifetime"}, ROW | {"tenure_months": "three"}, {}):
            assert client.post("/predict/churn", json=bad, headers=dana).status_code == 422
        assert client.post("/v2/models/churn/versions/99/infer", json={"inputs": []}, headers=dana).status_code == 404
        for _ in range(2):
            assert client.post("/predict/churn", json=ROW).status_code == 401
        assert client.post("/predict/other", json=ROW, headers=dana).status_code == 404

    health = scrape(serving.metrics_url, "churn")
    assert health.problem is None, health.problem
    assert (health.requests, health.errors) == (18, 6)
    assert health.error_rate == pytest.approx(6 / 18)
    # measured by the server inside each round trip the client timed
    assert 0 < health.latency_mean_seconds <= slowest
    assert 0 < health.latency_p95_seconds <= max(slowest * 2.5, 0.0005)  # within its bucket, at most 2.5x wide

    nothing = scrape(serving.metrics_url, "other")
    assert (nothing.requests, nothing.error_rate, nothing.latency_mean_seconds) == (0, None, None)

    guarded = scrape(serving.url + "/metrics", "churn")  # the serving port's /metrics needs a token
    assert guarded.error_rate is None
    assert guarded.problem.startswith("metrics not reachable: HTTPStatusError: Client error '401 Unauthorized'")
    assert guarded.problem.endswith("point metrics_url at the loopback port of `valueloop serve --metrics-port`")


def test_an_unreachable_server_is_a_recorded_problem() -> None:
    health = scrape(f"http://127.0.0.1:{free_port()}/metrics", "churn")
    assert health.error_rate is None and health.problem.startswith("metrics not reachable: ConnectError")
    assert scrape(None, "churn").problem == "no metrics_url in the operate section"
