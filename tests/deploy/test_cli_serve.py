"""``valueloop serve --workers 2``: the command serves with several processes whose metrics add up,
on the serving port and on the loopback metrics port, and among which new connections are shared
even when one of them is busy as they arrive."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from deploy_support import free_port, promote_version, wait_for, wait_until_ready
from test_serve import ROW

from valueloop.config import Settings


@dataclass
class TwoWorkers:
    settings: Settings
    url: str
    metrics_url: str
    workers: list[int]
    versions: list[int]


@pytest.fixture(scope="module")
def two_workers(workspace: tuple[Settings, list[int]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoWorkers]:
    settings, versions = workspace
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VALUELOOP_", "PROMETHEUS_"))}
    env.update(VALUELOOP_HOME=str(settings.home), VALUELOOP_DATABASE_URL=settings.database_url,
               VALUELOOP_MLFLOW_URI=settings.mlflow_uri, VALUELOOP_ARTIFACT_ROOT=settings.artifact_root)
    proc = subprocess.Popen([sys.executable, "-m", "valueloop", "serve", "--port", str(port), "--workers", "2",
                             "--no-auth", "--metrics-port", str(metrics_port)],
                            env=env, cwd=tmp_path_factory.mktemp("serve"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, proc)
        assert proc.poll() is None
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        workers = [int(p) for p in children if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(workers) == 2, children
        # the first worker to listen answers the readiness check; the other may still be loading
        wait_for(lambda: all(_listening(worker, port) for worker in workers), 120)
        yield TwoWorkers(settings, url, f"http://127.0.0.1:{metrics_port}", workers, versions)
    finally:
        proc.terminate()
        proc.wait(30)


def _listening(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on the loopback ``port``."""
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            held.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:  # closed since it was listed: a worker still loading opens and closes files
            continue
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state, inode = (line.split()[i] for i in (1, 3, 9))
        if state == "0A" and int(local.split(":")[1], 16) == port and f"socket:[{inode}]" in held:
            return True
    return False


def _answered(url: str) -> float:
    text = httpx.get(url + "/metrics").text
    return sum(float(v) for v in re.findall(r'valueloop_requests_total\{[^}]*status="200"[^}]*\} ([\d.]+)', text))


def test_serve_command_with_two_workers(two_workers: TwoWorkers) -> None:
    before = [_answered(two_workers.url), _answered(two_workers.metrics_url)]
    for _ in range(20):
        assert httpx.post(two_workers.url + "/predict/churn", json=ROW, timeout=30).status_code == 200
    assert [_answered(two_workers.url), _answered(two_workers.metrics_url)] == [b + 20 for b in before]


def _logged_by(settings: Settings, ids: set[str]) -> dict[str, list[int]]:
    """The process id of every prediction log file that holds each request of ``ids``."""
    import pyarrow.parquet as pq

    found: dict[str, list[int]] = {}
    for part in (Path(settings.prediction_log) / "churn").glob("date=*/part-*.parquet"):
        pid = int(part.name.split("-")[-3])
        for rid in pq.read_table(part, columns=["request_id"]).column("request_id").to_pylist():
            if rid in ids:
                found.setdefault(rid, []).append(pid)
    return found


def test_a_busy_worker_still_gets_its_share_of_new_connections(two_workers: TwoWorkers) -> None:
    """Both workers accepted from one shared socket, and asyncio accepts every waiting connection
    at once: a burst of connections (wrk's, a balancer's pool) arriving while one worker was busy
    all went to the other one and stayed there, so two workers served what one did. Here the
    busy worker is stopped while 16 clients connect and send; each request is answered, logged
    once, and by both workers."""
    host, port = two_workers.url.removeprefix("http://").split(":")
    body = json.dumps(ROW).encode()
    ids = {f"share-{os.getpid()}-{i}" for i in range(16)}
    busy = two_workers.workers[1]
    os.kill(busy, signal.SIGSTOP)
    try:
        clients = [socket.create_connection((host, int(port)), timeout=60) for _ in ids]
        for client, rid in zip(clients, sorted(ids)):
            client.sendall(b"POST /predict/churn HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"X-Request-Id: " + rid.encode() + b"\r\nContent-Length: " + str(len(body)).encode()
                           + b"\r\nConnection: close\r\n\r\n" + body)
    finally:
        os.kill(busy, signal.SIGCONT)
    for client in clients:
        with client:
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    logged: dict[str, list[int]] = {}

    def all_logged() -> bool:
        logged.update(_logged_by(two_workers.settings, ids))
        return set(logged) == ids

    wait_for(all_logged, 30)
    assert all(len(pids) == 1 for pids in logged.values()), logged
    assert {pids[0] for pids in logged.values()} == set(two_workers.workers), logged


def test_serve_on_a_busy_port_says_so_and_exits_4(settings: Settings, run_cli) -> None:
    """uvicorn's own failure came after "serving on ...", with exit code 1."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for flags in (("--port", str(port)), ("--port", str(free_port()), "--metrics-port", str(port))):
            done = run_cli(settings, "serve", *flags, timeout=120)
            assert done.returncode == 4, (done.stdout, done.stderr)
            flag = "--metrics-port" if "--metrics-port" in flags else "--port"
            assert f"error: {flag} {port}: port in use on 127.0.0.1" in done.stderr
            assert "serving on" not in done.stdout and "Traceback" not in done.stderr


def _versions_answering(two_workers: TwoWorkers, tag: str) -> dict[int, set[str]]:
    """The model versions that answer 16 requests, each on a connection of its own (so both
    workers take some), by the worker that answered (from the prediction log)."""
    ids = {}
    for i in range(16):
        with httpx.Client() as client:  # a new connection: the kernel picks the worker
            rid = f"{tag}-{os.getpid()}-{i}"
            answer = client.post(two_workers.url + "/predict/churn", json=ROW, headers={"X-Request-Id": rid}, timeout=30)
            assert answer.status_code == 200, answer.text
            ids[rid] = answer.headers["x-model-version"]
    logged: dict[str, list[int]] = {}

    def all_logged() -> bool:
        logged.update(_logged_by(two_workers.settings, set(ids)))
        return set(logged) == set(ids)

    wait_for(all_logged, 30)
    found: dict[int, set[str]] = {}
    for rid, pids in logged.items():
        found.setdefault(pids[0], set()).add(ids[rid])
    return found


def test_a_promotion_reaches_every_worker(two_workers: TwoWorkers) -> None:
    first, second = two_workers.versions
    promote_version(two_workers.settings, second)
    try:
        wait_for(lambda: _versions_answering(two_workers, "swap") == {w: {str(second)} for w in two_workers.workers}, 60)
    finally:
        promote_version(two_workers.settings, first)
        wait_for(lambda: _versions_answering(two_workers, "back") == {w: {str(first)} for w in two_workers.workers}, 60)
