"""``valueloop serve``, ``rollback`` and ``build``: REST serving of every use case's champion,
giving the champion back to its predecessor, and a self-contained bundle of one use case."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from valueloop.cli._common import JsonOption, actor, console, reconcile_aliases, show
from valueloop.cli.remote import Route, answer, segment, served

if TYPE_CHECKING:
    import uvicorn


def _listenable(host: str, port: int, flag: str) -> None:
    """Refuse a port something already listens on, before anything says "serving on"."""
    import errno

    from valueloop.errors import Conflict, InvalidInput

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Conflict(f"{flag} {port}: port in use on {host}; stop what listens there or choose "
                               "another port") from None
            raise InvalidInput(f"--host {host}: cannot listen there ({exc.strerror})") from None


def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8080, "--port"),
    workers: int = typer.Option(1, "--workers", min=1, help="uvicorn worker processes."),
    no_auth: bool = typer.Option(False, "--no-auth", help="Serve without bearer tokens (local demo only)."),
    max_body_bytes: int = typer.Option(1_000_000, "--max-body-bytes", min=1, help="Larger bodies get 413."),
    poll_seconds: float = typer.Option(1.0, "--poll-seconds", min=0.05,
                                       help="How often to look for promotions and rollbacks."),
    metrics_port: int | None = typer.Option(None, "--metrics-port", min=1, max=65535,
                                     help="Also serve /metrics without a token on 127.0.0.1:PORT, for a scraper."),
    default_model: str | None = typer.Option(None, "--default-model",
                                             help="The use case POST /invocations scores (default: the only one)."),
    mlflow_compat: bool = typer.Option(False, "--mlflow-compat",
                                       help="MLflow's routes answer byte for byte as `mlflow models serve`."),
) -> None:
    """Serve the champion (and challenger) of every use case that has one: Open Inference
    Protocol v2, MLflow scoring and plain JSON; metrics at /metrics (with a token)."""
    import uvicorn

    from valueloop.config import load_settings
    from valueloop.deploy.app import OPTIONS_ENV

    _listenable(host, port, "--port")
    if metrics_port is not None:
        _listenable("127.0.0.1", metrics_port, "--metrics-port")
    reconcile_aliases(load_settings())
    options = {"auth": not no_auth, "max_body_bytes": max_body_bytes, "poll_seconds": poll_seconds,
               "default_model": default_model, "mlflow_compat": mlflow_compat}
    os.environ[OPTIONS_ENV] = json.dumps(options)
    if workers > 1:  # each worker writes its samples here; /metrics adds them up
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="valueloop-metrics-"))
    if metrics_port is not None:
        from valueloop.deploy.metrics import serve_on_loopback

        serve_on_loopback(metrics_port)
        console().print(f"metrics without a token on http://127.0.0.1:{metrics_port}/metrics")
    console().print(f"serving on http://{host}:{port} with {workers} worker(s)"
                    f"{'' if options['auth'] else ' [yellow]without authentication[/yellow]'}")
    if workers == 1:
        uvicorn.run("valueloop.deploy.app:app_from_env", factory=True, host=host, port=port,
                    log_level="warning", timeout_graceful_shutdown=10)
        return
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config("valueloop.deploy.app:app_from_env", factory=True, host=host, port=port,
                            workers=workers, log_level="warning", timeout_graceful_shutdown=10)
    Multiprocess(config, sockets=[listening_socket(config)]).run()


def listening_socket(config: uvicorn.Config) -> socket.socket:
    """The socket the workers listen on: on Linux, each worker's own (:class:`PerWorker`), else the
    one uvicorn binds, shared. Either says TCP: uvicorn binds with ``proto`` 0, and asyncio turns
    Nagle's algorithm off only on connections whose socket says TCP; each keep-alive answer after
    the first then waited ~40 ms for the client's delayed ACK, and two workers served a third of
    what one did (uvicorn#3149)."""
    import sys

    bound = config.bind_socket()
    if sys.platform == "linux" and bound.family in (socket.AF_INET, socket.AF_INET6):
        with bound:
            family, address = bound.family, bound.getsockname()
        return PerWorker.bound(family, address)
    return socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())


class PerWorker(socket.socket):
    """A listening socket that each worker process binds anew to the same address (SO_REUSEPORT),
    so the kernel shares new connections among the workers that listen, one by one.

    On one shared socket, the first worker awake accepted every waiting connection at once
    (asyncio's accept loop): a burst of connections (wrk's, a balancer's pool) arriving while
    the other worker was busy all stayed with one worker, and two workers often served what one
    did. The parent's own copy is bound but never listens, so it gets no connections; a worker
    listens only once its models are loaded (uvicorn starts the app first)."""

    @classmethod
    def bound(cls, family: int, address: tuple[object, ...]) -> PerWorker:
        sock = cls(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        return sock

    def __reduce_ex__(self, protocol: object) -> tuple[object, tuple[int, tuple[object, ...]]]:
        """Sent to a worker (uvicorn spawns them) as "bind another like me"."""
        return PerWorker.bound, (self.family, self.getsockname())


@served
def rollback(
    ctx: typer.Context,
    usecase: str = typer.Argument(..., help="The use case whose champion goes back one step."),
    as_json: bool = JsonOption,
) -> None:
    """Give the champion alias back to the version that held it before; servers follow."""
    from valueloop.deploy.rollback import RollbackView
    from valueloop.deploy.rollback import rollback as rollback_

    def local(who: str | None) -> RollbackView:
        from valueloop.config import load_settings
        from valueloop.store import session

        settings = load_settings()
        with session(settings) as s:
            return rollback_(s, settings, who, usecase)

    done = answer(ctx, Route("POST", f"/api/usecases/{segment(usecase)}/rollback"), RollbackView, local)
    show(done, as_json, lambda: console().print(
        f"{done.usecase}: champion is version {done.champion} again (was {done.rolled_back})"))


def build(
    ctx: typer.Context,
    usecase: str = typer.Argument(..., help="The use case whose champion is bundled."),
    out: Path = typer.Option(..., "--out", "-o", help="A new (or empty) directory for the bundle."),
    as_json: bool = JsonOption,
) -> None:
    """Write a self-contained bundle that serves the champion on another machine: the model,
    pinned requirements, an entrypoint (python serve.py) and a Dockerfile."""
    from valueloop.config import load_settings
    from valueloop.deploy.bundle import build as build_
    from valueloop.store import session

    settings = load_settings()
    with session(settings) as s:
        done = build_(s, settings, actor(ctx), usecase, out.resolve())
    show(done, as_json, lambda: console().print(
        f"{done.usecase} v{done.version} bundled in {done.path} ({len(done.requirements)} pinned "
        f"requirements); run it with: python {done.path}/serve.py --port 8080"))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("rollback")(rollback)
    app.command("build")(build)
