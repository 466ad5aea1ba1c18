"""The control-plane API on a real uvicorn on loopback, with tokens for the churn team."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from valueloop.config import Settings
from valueloop.outcomes.users import create_token, list_users
from valueloop.store import session


@dataclass
class Api:
    """The running server, and a token for each user there was when it started."""

    url: str
    tokens: dict[str, str]

    def __call__(self, method: str, path: str, as_user: str | None = None, *, json: Any = None,
                 token: str | None = None) -> httpx.Response:
        secret = token or (self.tokens[as_user] if as_user else None)
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return httpx.request(method, self.url + path, json=json, headers=headers, timeout=120)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[[Settings], Api]]:
    """Start ``uvicorn --factory valueloop.server.app:app_from_env`` on these settings."""
    running: list[subprocess.Popen[bytes]] = []

    def start(settings: Settings) -> Api:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("VALUELOOP_")}
        log = tmp_path / f"uvicorn-{port}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "valueloop.server.app:app_from_env",
             "--host", "127.0.0.1", "--port", str(port)],
            env={**env, **settings.as_env()}, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )
        running.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180  # a readiness wait, not a measurement
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"uvicorn exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail(f"uvicorn did not answer on {url}:\n{log.read_text()}")
        with session(settings) as s:
            return Api(url, {u.name: create_token(s, u.name, "tests").token for u in list_users(s, "admin")})

    yield start
    for process in running:
        process.terminate()
        process.wait(timeout=60)
