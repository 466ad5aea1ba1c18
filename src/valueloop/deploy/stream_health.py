"""The stream consumer's health and Prometheus metrics, served over HTTP on ``--metrics-port``.

``/metrics`` is the Prometheus text of this consumer's own registry; ``/healthz`` answers 200
while the consumer reaches Redis and 503 once it has lost it.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class StreamMetrics:
    """One consumer's metrics, on a registry of its own so several consumers never collide."""

    def __init__(self, usecase: str, consumer: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"usecase": usecase, "consumer": consumer}
        names = list(labels)
        self.events = Counter("valueloop_stream_events_total", "Events handled, by outcome.",
                              [*names, "outcome"], registry=self.registry)
        self.errors = Counter("valueloop_stream_errors_total", "Scoring or Redis errors, by kind.",
                              [*names, "kind"], registry=self.registry)
        self.dead_letters = Counter("valueloop_stream_dead_letters_total",
                                    "Events moved to the dead-letter stream.", names,
                                    registry=self.registry).labels(**labels)
        self.batch_size = Histogram("valueloop_stream_batch_size", "Events scored in one model call.",
                                    names, buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
                                    registry=self.registry).labels(**labels)
        self.batch_seconds = Histogram("valueloop_stream_batch_seconds",
                                       "Time to score and write one micro-batch.", names,
                                       registry=self.registry).labels(**labels)
        self.lag = Gauge("valueloop_stream_lag", "Entries of the stream not yet delivered to the group.",
                         names, registry=self.registry).labels(**labels)
        self.pending = Gauge("valueloop_stream_pending", "Entries delivered to the group, not yet acknowledged.",
                             names, registry=self.registry).labels(**labels)
        self.throughput = Gauge("valueloop_stream_throughput", "Events per second over the last interval.",
                                names, registry=self.registry).labels(**labels)
        self._labels = labels
        self.healthy = True
        self.last_batch = time.time()
        self._window_start, self._window_events = time.monotonic(), 0

    def handled(self, outcome: str, count: int) -> None:
        if count:
            self.events.labels(**self._labels, outcome=outcome).inc(count)
            self._window_events += count

    def error(self, kind: str) -> None:
        self.errors.labels(**self._labels, kind=kind).inc()

    def tick(self) -> None:
        """Refresh the throughput gauge about once a second."""
        elapsed = time.monotonic() - self._window_start
        if elapsed >= 1.0:
            self.throughput.set(self._window_events / elapsed)
            self._window_start, self._window_events = time.monotonic(), 0


def serve(metrics: StreamMetrics, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Start the endpoint on a daemon thread; ``shutdown()`` the returned server to stop it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            if self.path == "/metrics":
                status, body, kind = 200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST
            elif self.path == "/healthz":
                status = 200 if metrics.healthy else 503
                body = json.dumps({"status": "ok" if metrics.healthy else "redis unreachable",
                                   "seconds_since_last_batch": round(time.time() - metrics.last_batch, 3)}
                                  ).encode()
                kind = "application/json"
            else:
                status, body, kind = 404, b"not found: try /metrics or /healthz\n", "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet: metrics are scraped often
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="stream-metrics", daemon=True).start()
    return server
