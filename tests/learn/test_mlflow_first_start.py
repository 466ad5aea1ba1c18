"""Processes that start together on a fresh installation (a server, its serving replicas, a
training job) all find MLflow's tables missing. MLflow creates them without a lock, so all but one
died with "table … already exists" (CI, tests/scale/test_topology.py). valueloop creates them
once, one process at a time, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from valueloop.config import load_settings

_PROCESSES = 4
_FIRST_USE = """
import pathlib, sys, time
from valueloop.config import load_settings
from valueloop.learn import tracking
import mlflow.store.tracking.sqlalchemy_store
go = pathlib.Path(sys.argv[1])
pathlib.Path(sys.argv[2]).touch()
while not go.exists():
    time.sleep(0.005)
client = tracking.client(load_settings())
client.search_experiments()
client.search_registered_models()
"""


def _mlflow_database(server_url: str) -> str:
    name = f"mlflow_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_processes_starting_together_on_a_fresh_store_all_come_up(
        store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALUELOOP_")} | {
        "VALUELOOP_HOME": str(tmp_path / "home")}
    if store == "postgresql":
        env["VALUELOOP_MLFLOW_URI"] = _mlflow_database(request.getfixturevalue("postgres_server"))
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(_PROCESSES)]
    processes = [subprocess.Popen([sys.executable, "-c", _FIRST_USE, str(go), str(flag)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for flag in ready]
    # every process has imported and is polling before the go, so they reach MLflow together
    deadline = time.monotonic() + 240
    while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    failures = []
    for process in processes:
        output, _ = process.communicate(timeout=240)
        if process.returncode != 0:
            failures.append(output[-1500:])
    assert not failures, f"{len(failures)} of {_PROCESSES} processes failed; the first:\n{failures[0]}"

    settings = load_settings(env)
    from valueloop.learn import tracking

    assert tracking.client(settings).search_experiments() is not None
