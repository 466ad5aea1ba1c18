"""The Prometheus metrics of serving, defined once for the REST server, scorers and the log.

With several uvicorn workers, ``valueloop serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before any
worker imports this module, so every worker writes its samples to that directory and
``/metrics`` aggregates them (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

REQUESTS = Counter(
    "valueloop_requests_total", "Prediction requests answered, by use case, model version and status.",
    ["usecase", "model_version", "status"],
)
LATENCY = Histogram(
    "valueloop_request_duration_seconds", "Time from receiving a prediction request to answering it.",
    ["usecase"], buckets=_LATENCY_BUCKETS,
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
