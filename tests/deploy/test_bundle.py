"""``valueloop build``: the bundle's own entrypoint serves the champion's predictions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from deploy_support import free_port, wait_until_ready
from test_serve import ROW

from valueloop.config import Settings


def test_bundle_serves_the_champion(workspace: tuple[Settings, list[int]], tmp_path: Path, run_cli: Any) -> None:
    settings, versions = workspace
    out = tmp_path / "bundle"
    refused = run_cli(settings, "build", "churn", "--out", str(out), as_user="ana")
    assert refused.returncode == 6 and "requires role developer or operations" in refused.stderr
    done = run_cli(settings, "build", "churn", "--out", str(out), "--json", as_user="devon")
    assert done.returncode == 0, done.stderr
    built = json.loads(done.stdout)
    assert {p.name for p in out.iterdir()} >= {"model", "valueloop", "requirements.txt", "bundle.json",
                                               "serve.py", "Dockerfile"}
    assert any(r.startswith("scikit-learn==") for r in (out / "requirements.txt").read_text().splitlines())
    assert "python serve.py" in (out / "Dockerfile").read_text().replace('"', "").replace(",", "")

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALUELOOP_")} | {"PYTHONPATH": ""}
    proc = subprocess.Popen([sys.executable, str(out / "serve.py"), "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, proc)
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        answer = httpx.post(url + "/predict/churn", json=ROW, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == str(built["version"])
    finally:
        proc.terminate()
        proc.wait(20)
