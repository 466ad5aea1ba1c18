"""Technical health from the REST server's Prometheus ``/metrics``: requests and error rate."""

from __future__ import annotations

from pydantic import BaseModel


class Health(BaseModel):
    source: str
    requests: float | None = None
    errors: float | None = None
    error_rate: float | None = None
    problem: str | None = None


def _failed(status: str) -> bool:
    return not (status.startswith("2") or status in ("ok", "success"))


def scrape(url: str | None, usecase: str, timeout: float = 2.0) -> Health:
    """Counts of ``valueloop_requests_total`` for the use case; an unreachable server is reported,
    not raised, so monitoring goes on without it."""
    if url is None:
        return Health(source="none", problem="no metrics_url in the operate section")
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        response = httpx.get(url, timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        return Health(source=url, problem=f"metrics not reachable: {type(exc).__name__}: {exc}")
    requests = errors = 0.0
    for family in text_string_to_metric_families(response.text):
        if family.name != "valueloop_requests":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("usecase") == usecase:
                requests += sample.value
                errors += sample.value if _failed(sample.labels.get("status", "")) else 0.0
    return Health(source=url, requests=requests, errors=errors,
                  error_rate=errors / requests if requests else None)
