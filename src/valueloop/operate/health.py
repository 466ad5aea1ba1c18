"""Technical health from the REST server's Prometheus ``/metrics``: requests, error rate and
the latency of answered predictions.

``valueloop serve`` answers ``/metrics`` on its own port only with a token; point the operate
section's ``metrics_url`` at the token-free loopback port of ``--metrics-port``.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel


_TOKEN_HINT = ("; the serving port's /metrics needs a token: point metrics_url at the loopback port "
               "of `valueloop serve --metrics-port`")


class Health(BaseModel):
    source: str
    requests: float | None = None
    errors: float | None = None
    error_rate: float | None = None
    latency_mean_seconds: float | None = None
    latency_p95_seconds: float | None = None
    problem: str | None = None


def _failed(status: str) -> bool:
    return not (status.startswith("2") or status in ("ok", "success"))


def _quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus's ``histogram_quantile``: linear within the bucket holding the q-th
    observation, from cumulative (upper bound, count) pairs; past the last finite bound, that bound."""
    rank = q * buckets[-1][1]
    lower = below = 0.0
    for upper, count in buckets:
        if count >= rank:
            return lower if math.isinf(upper) else lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def _latency(samples: list[Any]) -> tuple[float | None, float | None]:
    """Mean and 95th percentile of ``valueloop_request_duration_seconds`` samples of one use case."""
    count = sum(s.value for s in samples if s.name.endswith("_count"))
    if not count:
        return None, None
    total = sum(s.value for s in samples if s.name.endswith("_sum"))
    buckets: dict[float, float] = {}
    for s in samples:
        if s.name.endswith("_bucket"):
            bound = float(s.labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + s.value
    return total / count, _quantile(0.95, sorted(buckets.items()))


def scrape(url: str | None, usecase: str, timeout: float = 2.0) -> Health:
    """Counts of ``valueloop_requests_total`` and the latency histogram for the use case; an
    unreachable server is reported, not raised, so monitoring goes on without it."""
    if url is None:
        return Health(source="none", problem="no metrics_url in the operate section")
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        response = httpx.get(url, timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        hint = _TOKEN_HINT if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 401 else ""
        return Health(source=url, problem=f"metrics not reachable: {type(exc).__name__}: {exc}{hint}")
    requests = errors = 0.0
    durations: list[Any] = []
    for family in text_string_to_metric_families(response.text):
        mine = [s for s in family.samples if s.labels.get("usecase") == usecase]
        if family.name == "valueloop_requests":
            for sample in (s for s in mine if s.name.endswith("_total")):
                requests += sample.value
                errors += sample.value if _failed(sample.labels.get("status", "")) else 0.0
        elif family.name == "valueloop_request_duration_seconds":
            durations = mine
    mean, p95 = _latency(durations)
    return Health(source=url, requests=requests, errors=errors, error_rate=errors / requests if requests else None,
                  latency_mean_seconds=mean, latency_p95_seconds=p95)
