"""The Redis Streams consumer on a real redis-server: nothing lost, malformed events dead-lettered,
an event the model fails on dead-lettered after max_deliveries, a killed consumer's unacknowledged
events claimed by another, SIGTERM clean, Redis unreachable reported."""

from __future__ import annotations

import dataclasses
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
import pytest
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
        client.xadd(stream, {"data": json.dumps(missing)}).decode(): "[0].tenure_months: required field is missing",
        client.xadd(stream, {"data": json.dumps(typed)}).decode(): "[0].monthly_charges: expected a number, got 'a lot'",
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


#: A real model with an edge case it cannot score: customers of POISON months (none in the data).
FUSSY = """
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from valueloop.learn.candidates import make_preprocessor

POISON = 999


class Fussy(ClassifierMixin, BaseEstimator):
    def fit(self, X, y):
        numeric = [c for c in X.columns if X[c].dtype.kind in "if"]
        prep = make_preprocessor(numeric, [c for c in X.columns if c not in numeric])
        self.pipeline_ = make_pipeline(prep, LogisticRegression(max_iter=1000)).fit(X, y)
        self.classes_, self.feature_names_in_ = self.pipeline_.classes_, self.pipeline_.feature_names_in_
        return self

    def predict_proba(self, X):
        if (X["tenure_months"] == POISON).any():
            raise ValueError(f"cannot score tenure_months {POISON}")
        return self.pipeline_.predict_proba(X)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def train(data, params):
    return Fussy().fit(data.drop(columns=["churned"]), data["churned"])
"""


def _fussy_version(settings: Settings, folder: Path) -> tuple[Settings, int]:
    """Register the fussy model (its module allowed by hook_modules) as a new version of churn."""
    from valueloop.learn.training import train
    from valueloop.outcomes.spec import parse_spec
    from valueloop.outcomes.usecases import get_usecase, update_usecase
    from valueloop.store import session

    (folder / "fussy.py").write_text(FUSSY)
    settings = dataclasses.replace(settings, hook_modules=("fussy",))
    with session(settings) as s:
        data = get_usecase(s, "churn").spec
        data["model"]["candidates"] = [{"name": "fussy", "kind": "custom", "function": "fussy:train",
                                        "baseline": True}]
        update_usecase(s, "ana", parse_spec(data))
    with session(settings) as s:
        report = train(s, settings, "dana", "churn")
    assert report.registered is not None, report.results
    return settings, report.registered.version


def test_an_event_the_model_fails_on_is_dead_lettered_after_max_deliveries_and_the_others_scored(
        settings: Settings, champion: str, redis_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    settings, version = _fussy_version(settings, tmp_path)
    client = redis.Redis.from_url(redis_url)
    in_, out, dead = stream_names(champion)
    records = _records(settings, 40)
    sent = send_events(client, champion, records[:20])
    poison = client.xadd(in_, {"data": json.dumps(records[0] | {"tenure_months": 999})}).decode()
    sent += send_events(client, champion, records[20:])

    stop = threading.Event()
    options = StreamOptions(redis_url=redis_url, model=str(version), consumer="c1", max_deliveries=3,
                            claim_idle_ms=20, block_ms=10)
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(summary=consume(settings, "oscar", champion, options, stop)))
    worker.start()
    try:
        _wait(lambda: client.xlen(dead) >= 1 and client.xlen(out) >= 40, 120, "the poison dead-lettered")
    finally:
        stop.set()
        worker.join(30)
    [letter] = _read_all(client, dead)
    assert letter["event_id"] == poison
    assert letter["reason"] == ("delivered 4 times without being scored; "
                                "last error: ValueError: cannot score tenure_months 999"), letter
    assert json.loads(letter["data"])["tenure_months"] == 999
    summary = result["summary"]
    assert summary.failed == 3, "the model was tried on the poison once per delivery, max_deliveries times"
    assert (summary.predicted, summary.dead_lettered) == (40, 1)
    outputs = _read_all(client, out)
    assert [o["event_id"] for o in outputs] == sent, "the events around the poison were scored, once"
    assert {o["model_version"] for o in outputs} == {str(version)}
    assert client.xpending(in_, "valueloop")["pending"] == 0


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


def _pending(client: redis.Redis, stream: str, consumer: str) -> list[str]:
    """The entries delivered to ``consumer`` that it has not acknowledged (XPENDING)."""
    found = client.xpending_range(stream, "valueloop", min="-", max="+", count=100_000, consumername=consumer)
    return [p["message_id"].decode() for p in found]


def _kill_if_holding(process: subprocess.Popen[str], client: redis.Redis, stream: str, name: str) -> list[str]:
    """SIGKILL the consumer if, frozen (SIGSTOP), it holds events it has not acknowledged; returns
    them as they stand once it is dead, or nothing (the consumer thawed) when it held none."""
    process.send_signal(signal.SIGSTOP)
    if not _pending(client, stream, name):
        process.send_signal(signal.SIGCONT)
        return []
    process.send_signal(signal.SIGKILL)
    process.wait()
    return _pending(client, stream, name)


def test_a_consumer_killed_mid_run_loses_nothing_and_sigterm_exits_cleanly(
        settings: Settings, champion: str, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    in_, out, dead = stream_names(champion)
    records = _records(settings, 20_000)
    ports = deploy_support.free_port(), deploy_support.free_port()
    doomed, survivor = (_consumer(settings, redis_url, "doomed", ports[0]),
                        _consumer(settings, redis_url, "survivor", ports[1]))
    held: list[str] = []
    try:
        _wait(lambda: _healthy(ports[0], doomed) and _healthy(ports[1], survivor), 300, "both consumers up")
        sent: list[str] = []
        bad: dict[str, str] = {}
        for start in range(0, 20_000, 1000):  # a producer at a steady pace
            sent += send_events(client, champion, records[start:start + 1000])
            if start == 10_000:
                bad = _send_malformed(client, records)
            if start == 8000:
                _wait(lambda: any(o["consumer"] == "doomed" for o in _read_all(client, out)), 60,
                      "the doomed consumer scoring")
            if start >= 8000 and doomed.returncode is None:  # caught mid-batch, with events in hand
                held = _kill_if_holding(doomed, client, in_, "doomed")
            time.sleep(0.1)
        assert held, "the doomed consumer was killed holding events it had not acknowledged"
        _wait(lambda: not _pending(client, in_, "doomed"), 120, "the survivor claiming the doomed one's events")
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
    assert set(held) <= {o["event_id"] for o in outputs if o["consumer"] == "survivor"}, \
        "the events the killed consumer held were claimed and scored by the survivor"
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
