"""The Prometheus metrics of serving, defined once for the REST server, scorers and the log.

With several uvicorn workers, ``valueloop serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before any
worker imports this module, so every worker writes its samples to that directory and
``/metrics`` aggregates them (prometheus_client's multiprocess mode).

Label values are bounded: a use case label is a served use case or ``unknown``, a version label
a loaded version or ``none``, whatever names requests make up (each new value is a new series).
``/metrics`` on the serving port needs a token and shows the caller's use cases only;
``--metrics-port`` serves the whole text without a token, on loopback only, for a scraper.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

REQUESTS = Counter(
    "valueloop_requests_total", "Prediction requests answered, by use case, model version and status.",
    ["usecase", "model_version", "status"],
)
LATENCY = Histogram(
    "valueloop_request_duration_seconds", "Time from receiving a prediction request to answering it.",
    ["usecase", "model_version"], buckets=_LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "valueloop_batch_size", "Rows predicted in one model call by the micro-batcher.",
    ["usecase", "model_version"], buckets=_BATCH_BUCKETS,
)
IN_FLIGHT = Gauge(
    "valueloop_requests_in_flight", "Prediction requests being handled now.", ["usecase"],
    multiprocess_mode="livesum",
)
MODEL_LOAD = Histogram(
    "valueloop_model_load_seconds", "Time to load, verify and warm a model version.",
    ["usecase"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SWAPS = Counter(
    "valueloop_model_swaps_total", "Model versions swapped into service without a restart.",
    ["usecase", "role"],
)
LOG_DROPPED = Counter(
    "valueloop_prediction_log_dropped_total",
    "Prediction records not logged because the logger's queue was full or a write failed.",
    ["usecase"],
)
LOG_WRITTEN = Counter(
    "valueloop_prediction_log_records_total", "Prediction records written to the prediction log.",
    ["usecase", "source"],
)

UNKNOWN = "unknown"
_USECASE = re.compile(rb'usecase="([^"]*)"')


def usecase_label(usecase: str, served: Collection[str]) -> str:
    """The use case as a label value: a served one, else ``unknown``."""
    return usecase if usecase in served else UNKNOWN


def _registry() -> object:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry


def exposition(visible: Callable[[str], bool] | None = None) -> bytes:
    """The Prometheus text of every worker, keeping only series whose use case is ``visible``
    (series of no use case, and of ``unknown`` ones, are kept)."""
    from prometheus_client import generate_latest

    text = generate_latest(_registry())  # type: ignore[arg-type]
    if visible is None:
        return text

    def shown(line: bytes) -> bool:
        found = _USECASE.search(line)
        return found is None or found[1] == UNKNOWN.encode() or visible(found[1].decode())

    return b"\n".join(line for line in text.split(b"\n") if shown(line))


def statistics(usecase: str) -> dict[str, dict[str, float]]:
    """Per model version of the use case, over every worker: requests answered (``success``),
    refused (``fail``), and the seconds spent answering the successful ones."""
    found: dict[str, dict[str, float]] = {}
    for family in _registry().collect():  # type: ignore[attr-defined]
        for sample in family.samples:
            if sample.labels.get("usecase") != usecase:
                continue
            if sample.name == "valueloop_requests_total":
                key = "success" if sample.labels["status"] == "200" else "fail"
            elif sample.name == "valueloop_request_duration_seconds_sum":
                key = "seconds"
            else:
                continue
            counts = found.setdefault(sample.labels["model_version"], {"success": 0.0, "fail": 0.0, "seconds": 0.0})
            counts[key] += sample.value
    return found


def serve_on_loopback(port: int) -> None:
    """Serve :func:`exposition` without a token on ``127.0.0.1:port`` (a daemon thread)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr="127.0.0.1", registry=_registry())  # type: ignore[arg-type]
