"""Helpers of the Deploy tests: the churn use case with models trained, accepted and promoted
through the Data and Learn phases' services, and a real uvicorn serving them on loopback."""

from __future__ import annotations

import io
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from valueloop.config import Settings

FAST = [{"name": "logistic", "kind": "logistic", "baseline": True},
        {"name": "lightgbm", "kind": "lightgbm", "params": {"n_estimators": 20}}]


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
        data["model"] = data["model"] | {"candidates": FAST}
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


def wait_until_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 240) -> None:
    """Until the server in ``process`` answers /v2/health/ready, or the process has exited."""
    import httpx

    def ready() -> bool:
        try:
            return httpx.get(url + "/v2/health/ready").status_code == 200
        except httpx.TransportError:
            return process.poll() is not None

    wait_for(ready, seconds)

