"""Technical health from a REST server's Prometheus text: requests and error rate per use case;
an unreachable server is reported, not raised."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from operate.support import free_port

from valueloop.operate.health import scrape


@pytest.fixture
def metrics_url() -> Iterator[str]:
    registry = CollectorRegistry()
    requests = Counter("valueloop_requests_total", "requests", ["usecase", "model_version", "status"],
                       registry=registry)
    requests.labels("churn", "1", "200").inc(90)
    requests.labels("churn", "1", "422").inc(6)
    requests.labels("churn", "2", "500").inc(4)
    requests.labels("other", "1", "500").inc(50)
    text = generate_latest(registry)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


def test_error_rate_of_one_use_case_from_metrics(metrics_url: str) -> None:
    health = scrape(metrics_url, "churn")
    assert (health.requests, health.errors, health.error_rate) == (100, 10, 0.1)
    assert health.problem is None


def test_an_unreachable_server_is_a_recorded_problem() -> None:
    health = scrape(f"http://127.0.0.1:{free_port()}/metrics", "churn")
    assert health.error_rate is None and health.problem.startswith("metrics not reachable: ConnectError")
    assert scrape(None, "churn").problem == "no metrics_url in the operate section"
