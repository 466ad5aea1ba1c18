"""Helpers of the Deploy tests: the churn use case with models trained, accepted and promoted
through the Data and Learn phases' services, and a real uvicorn serving them on loopback."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from valueloop.config import Settings

FAST = [{"name": "logistic", "kind": "logistic", "baseline": True},
        {"name": "lightgbm", "kind": "lightgbm", "params": {"n_estimators": 20}}]

#: A bound on prediction time that no runner misses, however busy: fixtures must register their
#: models (the gate itself is tested on a given clock, in tests/learn/test_model_gates.py).
UNTIMED = {"max_seconds_per_row": 60.0}


#: HAProxy before the serving replicas, as deploy/haproxy.cfg has it, on loopback: round robin over
#: the replicas whose /v2/health/ready answers, a refused or emptied request sent to another
HAPROXY = """\
global
    maxconn 4096
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 2s
    retries 2
    option redispatch
    retry-on conn-failure empty-response
{stats}frontend serving
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /v2/health/ready
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2
{servers}
"""


def haproxy_config(port: int, replicas: dict[str, int], stats_port: int | None = None) -> str:
    """HAProxy's configuration for ``replicas`` (name: port) behind ``port``; with ``stats_port``,
    its statistics (CSV at /stats;csv) there."""
    stats = f"listen stats\n    bind 127.0.0.1:{stats_port}\n    stats enable\n    stats uri /stats\n" \
        if stats_port else ""
    servers = "\n".join(f"    server {name} 127.0.0.1:{p} check" for name, p in replicas.items())
    return HAPROXY.format(stats=stats, port=port, servers=servers)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_usecase(settings: Settings, workspace: Path) -> Path:
    """The approved churn use case (demo chapter 1) with fast candidates and one dataset version."""
    from valueloop.data import ingest
    from valueloop.demo import DemoContext
    from valueloop.demo import outcomes as chapter
    from valueloop.examples import load_generator
    from valueloop.outcomes.spec import parse_spec
    from valueloop.outcomes.usecases import get_usecase, update_usecase
    from valueloop.store import session

    workspace.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(settings=settings, workspace=workspace, console=Console(file=io.StringIO()))
    chapter.run(ctx)
    project = ctx.state["project"]
    with session(settings) as s:
        data = get_usecase(s, "churn").spec
        data["model"] = data["model"] | {"candidates": FAST, "tests": data["model"]["tests"] | UNTIMED}
        update_usecase(s, "ana", parse_spec(data))
    load_generator("churn").write(project / "data", 1200, 7)
    with session(settings) as s:
        ingest(s, settings, "dave", "churn", project_dir=project)
    return project


def train_version(settings: Settings, alias: str | None = "champion", candidate: str = "lightgbm") -> int:
    """Train, have the owner accept and promote a new version; returns its number."""
    from valueloop.learn.registry import accept, promote
    from valueloop.learn.training import train
    from valueloop.store import session

    with session(settings) as s:
        report = train(s, settings, "dana", "churn", candidates=[candidate])
    assert report.registered is not None, report
    version = report.registered.version
    with session(settings) as s:
        accept(s, "olivia", "churn", version, accepted=True, comment="meets the goal in the test")
    if alias:
        with session(settings) as s:
            promote(s, settings, "dana", "churn", version, alias)
    return version


@dataclass
class Served:
    """A running ``valueloop serve`` app on loopback, over a workspace with two versions."""

    settings: Settings
    url: str
    versions: list[int]
    server: object = None
    thread: threading.Thread | None = None
    tokens: dict[str, str] = field(default_factory=dict)


def start_server(settings: Settings, **options: object) -> tuple[object, threading.Thread, str]:
    from valueloop.deploy.local import serve_locally

    local = serve_locally(settings, poll_seconds=0.2, **options)
    return local.server, local.thread, local.url


def wait_for(check: object, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def server_started(settings: Settings, log: Path) -> None:
    """Start ``valueloop server`` until it answers, then stop it (a readiness wait, not a measurement)."""
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALUELOOP_")} | settings.as_env()
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "valueloop", "server", "--port", str(port),
                                    "--no-scheduler"], env=env, stdout=out, stderr=subprocess.STDOUT)

    def answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
        except httpx.TransportError:
            return process.poll() is not None

    try:
        wait_for(answers, 180)
        assert process.poll() is None, log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=60)


def wait_until_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 240,
                     path: str = "/v2/health/ready") -> None:
    """Until the server in ``process`` answers ``path`` with 200, or the process has exited."""
    import httpx

    def ready() -> bool:
        try:
            return httpx.get(url + path).status_code == 200
        except httpx.TransportError:
            return process.poll() is not None

    wait_for(ready, seconds)


def new_database(server_url: str, prefix: str) -> str:
    """A new database on the PostgreSQL server at ``server_url``, as a postgresql+psycopg:// URL."""
    import uuid

    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def mlflow_server(postgres_server: str, artifacts: str, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``mlflow server`` on a new PostgreSQL database with its artifacts at ``artifacts`` (an
    s3:// prefix): its URL and process, which the caller waits for (on /health).

    MLflow's job runner (a pool of huey consumers) is not what valueloop uses: seven processes
    fewer to start. Its own process group, so that stopping it stops its workers too, even when
    it failed to come up."""
    port = free_port()
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--backend-store-uri", new_database(postgres_server, "mlflow"),
             "--artifacts-destination", artifacts], stdout=out, stderr=out, env=env, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def set_deploy(settings: Settings, **deploy: object) -> None:
    """The owner sets churn's deploy section (none given: the defaults, no rollout)."""
    from valueloop.outcomes.spec import parse_spec
    from valueloop.outcomes.usecases import get_usecase, update_usecase
    from valueloop.store import session

    with session(settings) as s:
        data = get_usecase(s, "churn").spec
        if (data.get("deploy") or None) == (deploy or None):
            return
        data["deploy"] = deploy or None
        update_usecase(s, "olivia", parse_spec(data))  # a rollout is the owner's decision


def promote_version(settings: Settings, version: int, alias: str = "champion") -> None:
    from valueloop.learn.registry import promote
    from valueloop.store import session

    with session(settings) as s:
        promote(s, settings, "dana", "churn", version, alias)


def registry_state(settings: Settings) -> tuple[str, str | None, dict[str, object]]:
    """churn's champion, challenger and deploy policy as the registry and its spec hold them."""
    from valueloop.deploy.pool import registry_state as wanted

    found = wanted(settings)["churn"]
    return found.champion, found.challenger, found.policy.model_dump()


def served_state(url: str, token: str) -> tuple[str, str | None, dict[str, object]]:
    """The same three as the server at ``url`` serves them."""
    import httpx

    served = httpx.get(url + "/models", headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    churn = next(m for m in served if m.get("name") == "churn")
    return churn["champion"], churn["challenger"], churn["deploy"]


def restore_baseline(served: Served) -> None:
    """Put churn back as the fixtures made it: the first version champion, no challenger, the
    default deploy section; then wait until the server serves exactly that."""
    first = served.versions[0]
    set_deploy(served.settings)
    champion, challenger, _ = registry_state(served.settings)
    if challenger is not None:
        promote_version(served.settings, int(challenger))  # the only way to take the alias off it
    if challenger is not None or champion != str(first):
        promote_version(served.settings, first)
    baseline = baseline_state(served)
    assert registry_state(served.settings) == baseline
    wait_for(lambda: served_state(served.url, served.tokens["dana"]) == baseline)


def baseline_state(served: Served) -> tuple[str, str | None, dict[str, object]]:
    from valueloop.outcomes.spec import Deploy

    return str(served.versions[0]), None, Deploy().model_dump()
