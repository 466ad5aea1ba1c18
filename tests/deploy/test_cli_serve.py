"""``valueloop serve --workers 2``: the command serves with several processes whose metrics add up,
on the serving port and on the loopback metrics port."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
from deploy_support import free_port, wait_until_ready
from test_serve import ROW

from valueloop.config import Settings


def test_serve_command_with_two_workers(workspace: tuple[Settings, list[int]], tmp_path: Path) -> None:
    settings, _ = workspace
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VALUELOOP_", "PROMETHEUS_"))}
    env.update(VALUELOOP_HOME=str(settings.home), VALUELOOP_DATABASE_URL=settings.database_url,
               VALUELOOP_MLFLOW_URI=settings.mlflow_uri, VALUELOOP_ARTIFACT_ROOT=settings.artifact_root)
    proc = subprocess.Popen([sys.executable, "-m", "valueloop", "serve", "--port", str(port), "--workers", "2",
                             "--no-auth", "--metrics-port", str(metrics_port)],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, proc)
        assert proc.poll() is None
        for _ in range(20):
            assert httpx.post(url + "/predict/churn", json=ROW, timeout=30).status_code == 200
        for text in (httpx.get(url + "/metrics").text, httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text):
            served = sum(float(v) for v in re.findall(r'valueloop_requests_total\{[^}]*status="200"[^}]*\} ([\d.]+)',
                                                      text))
            assert served == 20, text
    finally:
        proc.terminate()
        proc.wait(30)


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
