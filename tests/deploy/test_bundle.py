"""``valueloop build``: the bundle's own entrypoint serves the champion's predictions from a
fresh virtual environment that has only the bundle's requirements.txt."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from deploy_support import free_port, wait_until_ready
from test_serve import ROW

from valueloop.config import Settings
from valueloop.deploy import bundle
from valueloop.errors import InvalidInput


def test_bundle_serves_the_champion(workspace: tuple[Settings, list[int]], tmp_path: Path, run_cli: Any) -> None:
    settings, versions = workspace
    out = tmp_path / "bundle"
    refused = run_cli(settings, "build", "churn", "--out", str(out), as_user="ana")
    assert refused.returncode == 6 and "requires role developer or operations" in refused.stderr
    done = run_cli(settings, "build", "churn", "--out", str(out), "--json", as_user="devon")
    assert done.returncode == 0, done.stderr
    built = json.loads(done.stdout)
    assert {p.name for p in out.iterdir()} >= {"model", "valueloop", "requirements.txt", "bundle.json",
                                               "serve.py", "Dockerfile", ".dockerignore"}
    assert any(r.startswith("scikit-learn==") for r in (out / "requirements.txt").read_text().splitlines())
    dockerfile = (out / "Dockerfile").read_text()
    assert "python serve.py" in dockerfile.replace('"', "").replace(",", "")
    assert "USER 10001" in dockerfile and "libgomp1" in dockerfile and "HEALTHCHECK" in dockerfile
    assert "state/" in (out / ".dockerignore").read_text().splitlines()

    python = _fresh_venv(out / "requirements.txt", tmp_path / "venv")
    port = free_port()
    refused = subprocess.run([str(python), str(out / "serve.py"), "--port", str(port)], cwd=tmp_path,
                             env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "VALUELOOP_BUNDLE_TOKEN is not set" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    token = "bundle-token-of-the-test"
    proc = subprocess.Popen([str(python), str(out / "serve.py"), "--port", str(port)], cwd=tmp_path,
                            env=_clean_env() | {"VALUELOOP_BUNDLE_TOKEN": token},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, proc)
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert httpx.post(url + "/predict/churn", json=ROW, timeout=30).status_code == 401
        wrong = httpx.post(url + "/predict/churn", json=ROW, headers={"Authorization": "Bearer nope"}, timeout=30)
        assert wrong.status_code == 401 and "VALUELOOP_BUNDLE_TOKEN" in wrong.text
        answer = httpx.post(url + "/predict/churn", json=ROW, headers={"Authorization": f"Bearer {token}"},
                            timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == str(built["version"])
        assert answer.json()["probabilities"][0] > 0.5  # ROW is a customer about to leave
    finally:
        proc.terminate()
        proc.wait(20)


def _clean_env() -> dict[str, str]:
    """This machine's environment without the test venv's or valueloop's settings."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("VALUELOOP_", "VIRTUAL_ENV", "UV_PROJECT", "PYTHON", "CONDA"))}


def _fresh_venv(requirements: Path, venv: Path) -> Path:
    """A new venv with requirements.txt installed by uv (from its cache when it holds them);
    returns its python, checked not to see the test venv's packages."""
    uv = shutil.which("uv")
    assert uv is not None, "uv is not on PATH: the bundle test installs the bundle's requirements with it"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], env=_clean_env(),
                   check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(requirements)],
                   env=_clean_env(), check=True, timeout=600)
    seen = subprocess.run([str(python), "-c", "import typer"], env=_clean_env(), capture_output=True)
    assert seen.returncode != 0, "the fresh venv sees the test venv's packages (typer is the CLI's, not serving's)"
    return python


def test_a_bundle_whose_manifest_was_edited_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "bundle.json").write_text(json.dumps({"usecase": "churn", "version": "two", "deploy": {}}))
    with pytest.raises(InvalidInput) as refused:
        bundle.serve_bundle(tmp_path, "127.0.0.1", 0, auth=False)
    assert str(refused.value).splitlines() == [
        f"bundle {tmp_path}: bundle.json is not a bundle's manifest:",
        '  - version: expected an integer, got "two"', "  - digest: required field is missing"]
