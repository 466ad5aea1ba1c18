"""The serving app in a thread of this process on a free loopback port, until it is ready:
what the demo and the tests use instead of a separate ``valueloop serve`` process."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from valueloop.config import Settings


@dataclass
class LocalServer:
    url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def serve_locally(settings: Settings, ready_seconds: float = 240, **options: Any) -> LocalServer:
    """Start ``create_app(settings, ServeOptions(**options))`` and wait for ``/v2/health/ready``."""
    import httpx
    import uvicorn

    from valueloop.deploy.app import ServeOptions, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, ServeOptions(**options)), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                return LocalServer(url, server, thread)
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.should_exit = True
    raise RuntimeError(f"the serving app did not become ready in {ready_seconds:g} s")
