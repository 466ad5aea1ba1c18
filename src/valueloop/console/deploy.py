"""The Deploy page: what is served (champion, challenger, canary share or shadow), traffic over
the recent monitor windows (stored aggregates, never the prediction log), batch jobs with their
lineage, and the stream consumers with their lag (asked of Redis, briefly)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, load_only

from valueloop.config import Settings, hide_password
from valueloop.console import charts
from valueloop.console.web import View
from valueloop.deploy.batch import BatchJobView
from valueloop.deploy.batch_tables import BatchJob
from valueloop.learn.registry import list_models
from valueloop.learn.views import ModelVersionView
from valueloop.operate.tables import MonitorResult
from valueloop.outcomes.roles import Action, allows
from valueloop.outcomes.spec import Deploy
from valueloop.outcomes.usecases import UseCaseView, get_usecase, spec_of
from valueloop.outcomes.usecases import view as usecase_view
from valueloop.store.models import AuditEvent

router = APIRouter()
#: the monitor windows the traffic charts show, the newest
WINDOWS = 48
#: the batch jobs listed, the newest
JOBS = 20
#: how long the page waits for Redis before it reports the streams unreachable
REDIS_TIMEOUT = 0.25


class Served(BaseModel):
    champion: ModelVersionView | None
    challenger: ModelVersionView | None
    rollout: str
    canary: float
    shadow: bool


class TrafficWindow(BaseModel):
    window: str
    start: str
    rows: int
    per_hour: float | None
    p50_ms: float | None
    p99_ms: float | None
    error_rate: float | None


class Consumer(BaseModel):
    name: str
    pending: int
    idle_seconds: float


class StreamGroup(BaseModel):
    stream: str
    group: str
    lag: int | None
    pending: int
    consumers: list[Consumer]


class DeployPage(BaseModel):
    usecase: UseCaseView
    served: Served
    traffic: list[TrafficWindow]
    charts: dict[str, Any]
    jobs: list[BatchJobView]
    streams: list[StreamGroup]
    stream_problem: str | None
    may_promote: bool


def _served(models: list[ModelVersionView], deploy: Deploy) -> Served:
    holder = {a: next((m for m in models if a in m.aliases), None) for a in ("champion", "challenger")}
    rollout = "none"
    if holder["challenger"] is not None:
        rollout = "shadow" if deploy.shadow else f"canary {deploy.canary:.0%}" if deploy.canary else "registered only"
    return Served(champion=holder["champion"], challenger=holder["challenger"], rollout=rollout,
                  canary=deploy.canary, shadow=deploy.shadow)


def _traffic(session: Session, usecase: str) -> list[TrafficWindow]:
    rows = list(session.scalars(select(MonitorResult).options(load_only(
        MonitorResult.window_start, MonitorResult.window_end, MonitorResult.rows, MonitorResult.health))
                                .where(MonitorResult.usecase == usecase)
                                .order_by(MonitorResult.window_start.desc(), MonitorResult.id.desc())
                                .limit(WINDOWS)))[::-1]
    shown, before = [], None
    for i, r in enumerate(rows, 1):
        hours = (r.window_end - r.window_start).total_seconds() / 3600
        latency = (r.health or {}).get("latency") or {}
        server = (r.health or {}).get("server")
        shown.append(TrafficWindow(
            window=f"#{i}", start=f"{r.window_start:%m-%d %H:%M}", rows=r.rows,
            per_hour=r.rows / hours if hours > 1 / 60 else None,
            p50_ms=latency["p50"] * 1000 if "p50" in latency else None,
            p99_ms=latency["p99"] * 1000 if "p99" in latency else None,
            error_rate=_error_rate(before, server)))
        before = server or before
    return shown


def _error_rate(before: dict[str, float] | None, now: dict[str, float] | None) -> float | None:
    """The share of failed requests between two monitor runs' samples of the server's counters
    (a restarted server counts from zero again); None without both."""
    if before is None or now is None:
        return None
    requests, errors = now["requests"] - before["requests"], now["errors"] - before["errors"]
    if requests < 0:
        requests, errors = now["requests"], now["errors"]
    return errors / requests if requests > 0 else None


def _charts(traffic: list[TrafficWindow]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    volume = [{"window": t.window, "predictions": t.rows, "series": "predictions"} for t in traffic]
    if volume:
        found["volume"] = charts.lines(volume, "window", "predictions", "series", "predictions per window")
    latency = [{"window": t.window, "ms": v, "series": q} for t in traffic
               for q, v in (("p50", t.p50_ms), ("p99", t.p99_ms)) if v is not None]
    if latency:
        found["latency"] = charts.lines(latency, "window", "ms", "series", "latency per window", y_title="ms")
    if any(t.error_rate is not None for t in traffic):  # every window, so the axes line up
        errors = [{"window": t.window, "error rate": t.error_rate, "series": "error rate"} for t in traffic]
        found["errors"] = charts.lines(errors, "window", "error rate", "series", "error rate per window",
                                       y_format=".1%")
    return found


def _jobs(session: Session, usecase: str) -> list[BatchJobView]:
    rows = session.scalars(select(BatchJob).where(BatchJob.usecase == usecase)
                           .order_by(BatchJob.started_at.desc()).limit(JOBS))
    return [BatchJobView.model_validate(j, from_attributes=True) for j in rows]


def _redis_url(settings: Settings) -> str | None:
    """Where the streams are: the redis_url setting, else the home's private server while it runs."""
    if settings.sources.get("redis_url") != "default":
        return settings.redis_url
    found = settings.home / "redis" / "url"
    return found.read_text().strip() or None if found.is_file() else None


def _streams(session: Session, settings: Settings, usecase: str) -> tuple[list[StreamGroup], str | None]:
    """The consumer groups of the use case's input stream, with their lag and consumers; Redis
    is asked only about a use case whose stream a consumer ever started on."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from valueloop.deploy.stream import stream_names

    started = session.scalar(select(AuditEvent.id).where(AuditEvent.usecase == usecase,
                                                         AuditEvent.action == "stream.start").limit(1))
    if started is None:
        return [], None
    url = _redis_url(settings)
    if url is None:
        return [], "no stream consumer is running: the home's own Redis starts with the first `valueloop stream`"
    source = stream_names(usecase)[0]
    client = redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT,
                                  socket_timeout=REDIS_TIMEOUT, retry=Retry(NoBackoff(), 0))
    try:
        groups = []
        for group in client.xinfo_groups(source) if client.exists(source) else []:
            name = group["name"].decode()
            consumers = [Consumer(name=c["name"].decode(), pending=c["pending"], idle_seconds=c["idle"] / 1000)
                         for c in client.xinfo_consumers(source, name)]
            groups.append(StreamGroup(stream=source, group=name, lag=group.get("lag"), pending=group["pending"],
                                      consumers=consumers))
        return groups, None
    except redis.RedisError as exc:
        return [], f"streams not reachable at {hide_password(url)}: {type(exc).__name__}"
    finally:
        client.close()


def build(view: View, usecase: str) -> DeployPage:
    found = get_usecase(view.s, usecase)
    models = list_models(view.s, view.name, usecase)  # checks the view permission
    traffic = _traffic(view.s, found.name)
    streams, problem = _streams(view.s, view.settings, found.name)
    return DeployPage(usecase=usecase_view(found), served=_served(models, spec_of(found).deploy or Deploy()),
                      traffic=traffic, charts=_charts(traffic), jobs=_jobs(view.s, found.name), streams=streams,
                      stream_problem=problem, may_promote=allows(view.s, view.user, Action.promote, found))


@router.get("/usecases/{name}/deploy")
def page(name: str, view: View) -> Response:
    return view.render("deploy.html", build(view, name), nav="usecases")
