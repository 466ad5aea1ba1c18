"""The platform's image and topology files, checked by the tools that read them: HAProxy and
Prometheus (promtool) parse their configurations, every expression of the Grafana dashboard
parses as PromQL, and the compose file's balancer and scrape targets name its own services."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _tool(name: str) -> str:
    found = shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    return found or pytest.fail(f"{name} is not installed: scripts/test installs it with apt-get")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_prometheus_configuration_and_dashboard_queries_parse(tmp_path: Path) -> None:
    shutil.copy(DEPLOY / "prometheus" / "prometheus.yml", tmp_path)
    (tmp_path / "metrics-token").write_text("a token\n")  # the operator's, never committed
    checked = _run(_tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    dashboard = json.loads((DEPLOY / "grafana" / "valueloop.json").read_text())
    queries = [t["expr"].replace("$usecase", ".*") for p in dashboard["panels"] for t in p["targets"]]
    assert len(queries) >= 10
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": q} for i, q in enumerate(queries)]}]}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    checked = _run(_tool("promtool"), "check", "rules", str(tmp_path / "rules.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_balancer_and_scrape_targets_are_the_compose_files_own_services() -> None:
    checked = _run(_tool("haproxy"), "-c", "-f", str(DEPLOY / "haproxy.cfg"))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "s3", "redis", "server", "serve-a", "serve-b", "balancer", "stream",
            "prometheus"} <= set(services)
    replicas = [line.split()[1] for line in (DEPLOY / "haproxy.cfg").read_text().splitlines()
                if line.strip().startswith("server ")]
    assert replicas == ["serve-a", "serve-b"]
    for name in replicas:
        assert "serve" in services[name]["command"] and \
            services[name]["environment"]["VALUELOOP_HEALTH_URL"].endswith("/v2/health/ready")
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t.split(":")[0] for job in scrape["scrape_configs"] for c in job["static_configs"]
               for t in c["targets"]}
    assert targets == {"serve-a", "serve-b", "balancer"}
    built = {name for name, service in services.items() if service.get("build")}
    assert built == {"server", "serve-a", "serve-b", "stream"}
    # no secret in the file: each comes from the environment, and is required there
    assert "VALUELOOP_PSEUDONYM_KEY:?" in (DEPLOY / "compose.yaml").read_text()


def test_the_image_runs_unprivileged_with_a_health_check_and_no_state() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    final = dockerfile.rsplit("\nFROM ", 1)[1]
    assert "USER 10001" in final and "HEALTHCHECK" in final and "libgomp1" in final
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if not line.startswith("#")]
    assert ignored[0] == "*" and "!src/" in ignored  # only what is named goes in
    assert not any(line.startswith("COPY") and ("home" in line or ".venv" in line) for line in final.splitlines())
