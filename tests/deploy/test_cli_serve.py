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
