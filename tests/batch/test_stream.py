"""The Redis Streams consumer on a real redis-server: nothing lost, malformed events dead-lettered,
a killed consumer's events claimed by another, SIGTERM clean, Redis unreachable reported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import redis
import deploy_support

from valueloop.config import Settings
from valueloop.deploy.stream import StreamOptions, consume, send_events, stream_names

MALFORMED = [b"{not json", b"[1, 2]"]


def _records(settings: Settings, count: int) -> list[dict[str, Any]]:
    """``count`` feature records of the newest dataset version, as a producer would send them."""
    from valueloop.data import read_version
    from valueloop.learn.registry import load_model
    from valueloop.store import session

    with session(settings) as s:
        names = load_model(s, settings, "churn", "champion").metadata.get_input_schema().input_names()
        rows = read_version(s, "churn").select(names).to_pylist()
    return [rows[i % len(rows)] for i in range(count)]


def _send_malformed(client: redis.Redis, records: list[dict[str, Any]]) -> dict[str, str]:
    """Events that can never be scored, with the words their dead letter must give."""
    stream = stream_names("churn")[0]
    missing = {k: v for k, v in records[0].items() if k != "tenure_months"}
    typed = records[0] | {"monthly_charges": "a lot"}
    return {
        client.xadd(stream, {"data": MALFORMED[0]}).decode(): "not JSON",
        client.xadd(stream, {"data": MALFORMED[1]}).decode(): "not an object of features",
        client.xadd(stream, {"data": json.dumps(missing)}).decode(): "missing feature 'tenure_months'",
        client.xadd(stream, {"data": json.dumps(typed)}).decode(): "'a lot' is not a number",
    }


def _read_all(client: redis.Redis, stream: str) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in client.xrange(stream)]


def _wait(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.05)


def test_events_are_scored_logged_and_acknowledged_and_malformed_ones_dead_lettered(
        settings: Settings, champion: str, redis_url: str, tmp_path: Path) -> None:
    from valueloop.deploy.predlog import PredictionLog

    client = redis.Redis.from_url(redis_url)
    records = _records(settings, 300)
    sent = send_events(client, champion, records[:150])
    bad = _send_malformed(client, records)
    sent += send_events(client, champion, records[150:])
    in_, out, dead = stream_names(champion)

    port = deploy_support.free_port()
    stop = threading.Event()
    options = StreamOptions(redis_url=redis_url, batch_size=64, metrics_port=port, consumer="c1")
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(summary=consume(settings, "oscar", champion, options, stop)))
    worker.start()
    try:
        _wait(lambda: client.xlen(out) + client.xlen(dead) >= 304, 60, "every event handled")
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        health = httpx.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        stop.set()
        worker.join(30)
    assert 'valueloop_stream_events_total{consumer="c1",outcome="predicted",usecase="churn"} 300.0' in metrics
    assert 'valueloop_stream_dead_letters_total{consumer="c1",usecase="churn"} 4.0' in metrics
    assert "valueloop_stream_lag" in metrics and "valueloop_stream_batch_size_bucket" in metrics
    assert health.status_code == 200 and health.json()["status"] == "ok"

    outputs = _read_all(client, out)
    assert [o["event_id"] for o in outputs] == sent
    assert all(o["model_version"] == "1" and 0 <= float(o["probability"]) <= 1 for o in outputs)
    letters = {d["event_id"]: d for d in _read_all(client, dead)}
    assert set(letters) == set(bad)
    for event_id, words in bad.items():
        assert words in letters[event_id]["reason"], letters[event_id]
    assert client.xpending(in_, "valueloop")["pending"] == 0
    logged = PredictionLog(settings, champion).read()
    assert sorted(logged["request_id"].to_pylist()) == sorted(sent)
    assert set(logged["source"].to_pylist()) == {"stream"}
    assert result["summary"].predicted == 300 and result["summary"].dead_lettered == 4


def _consumer(settings: Settings, redis_url: str, name: str, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, **settings.as_env(), "VALUELOOP_USER": "oscar", "VALUELOOP_REDIS_URL": redis_url}
    return subprocess.Popen(
        [sys.executable, "-m", "valueloop", "stream", "churn", "--consumer", name, "--batch-size", "100",
         "--claim-idle-ms", "1000", "--block-ms", "50", "--metrics-port", str(port), "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _healthy(port: int, process: subprocess.Popen[str]) -> bool:
    assert process.poll() is None, process.communicate()[1]
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    except httpx.TransportError:
        return False


def test_a_consumer_killed_mid_run_loses_nothing_and_sigterm_exits_cleanly(
        settings: Settings, champion: str, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    in_, out, dead = stream_names(champion)
    records = _records(settings, 20_000)
    ports = deploy_support.free_port(), deploy_support.free_port()
    doomed, survivor = (_consumer(settings, redis_url, "doomed", ports[0]),
                        _consumer(settings, redis_url, "survivor", ports[1]))
    try:
        _wait(lambda: _healthy(ports[0], doomed) and _healthy(ports[1], survivor), 300, "both consumers up")
        sent: list[str] = []
        bad: dict[str, str] = {}
        for start in range(0, 20_000, 1000):  # a producer at a steady pace
            sent += send_events(client, champion, records[start:start + 1000])
            if start == 10_000:
                bad = _send_malformed(client, records)
            time.sleep(0.1)
            if start == 8000:
                _wait(lambda: any(o["consumer"] == "doomed" for o in _read_all(client, out)), 60,
                      "the doomed consumer scoring")
                doomed.send_signal(signal.SIGKILL)
        _wait(lambda: len({o["event_id"] for o in _read_all(client, out)}) + client.xlen(dead) >= 20_004,
              120, "every event scored or dead-lettered")
        survivor.send_signal(signal.SIGTERM)
        stdout, stderr = survivor.communicate(timeout=30)
    finally:
        for process in (doomed, survivor):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert survivor.returncode == 0, stderr
    assert json.loads(stdout)["consumer"] == "survivor"
    assert doomed.returncode == -signal.SIGKILL

    outputs = _read_all(client, out)
    scored = {o["event_id"] for o in outputs}
    assert scored == set(sent), "every valid event has its prediction (after dedup by event id)"
    assert {o["consumer"] for o in outputs} == {"doomed", "survivor"}, "the consumers shared the load"
    letters = {d["event_id"]: d["reason"] for d in _read_all(client, dead)}
    assert set(letters) == set(bad) and all(bad[i] in letters[i] for i in bad)
    assert client.xpending(in_, "valueloop")["pending"] == 0, "nothing is left unacknowledged"


def test_redis_unreachable_is_a_clear_error_after_bounded_retries(settings: Settings, champion: str,
                                                                    run_cli) -> None:
    nowhere = f"redis://127.0.0.1:{deploy_support.free_port()}/0"
    done = run_cli(settings, "stream", champion, "--redis-url", nowhere, "--connect-timeout", "1",
                   as_user="oscar")
    assert done.returncode == 8, done.stderr
    assert f"Redis at {nowhere} is unreachable after 1 s" in done.stderr
    assert "Traceback" not in done.stderr
