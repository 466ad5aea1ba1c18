"""Shared fixtures: fresh settings per test on SQLite and on a real PostgreSQL, the churn team
with an approved use case, and the CLI run as a subprocess.

PostgreSQL is started by the test session on a loopback port from the Debian binaries (or taken
from ``VALUELOOP_TEST_POSTGRES_URL``). A missing server fails the tests; it never skips them.
"""

from __future__ import annotations

import glob
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console

from valueloop.config import Settings, load_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root; CI runs as root."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server for this test session (admin database ``postgres``)."""
    if url := os.environ.get("VALUELOOP_TEST_POSTGRES_URL"):
        yield url
        return
    initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdbs:
        pytest.fail("PostgreSQL is not installed: `apt-get install postgresql` (see .ci/run)")
    bindir = Path(initdbs[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="valueloop-pg-"))
    root.chmod(0o755)
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                                 "--auth=trust", "-E", "UTF8"]), check=True, capture_output=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", options,
                                 "-l", str(root / "log"), "-w", "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_server: str) -> str:
    """A new, empty database on the session's server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    plain = postgres_server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"


def _settings(home: Path, database_url: str | None = None) -> Settings:
    env = {"VALUELOOP_HOME": str(home)}
    if database_url:
        env["VALUELOOP_DATABASE_URL"] = database_url
    return load_settings(env)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh home with its SQLite metadata database."""
    return _settings(tmp_path / "home")


@pytest.fixture
def pg_settings(tmp_path: Path, postgres_database: str) -> Settings:
    """Settings on a fresh home whose metadata lives in a fresh PostgreSQL database."""
    return _settings(tmp_path / "home", postgres_database)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The test runs twice: on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return _settings(tmp_path / "home")
    return _settings(tmp_path / "home", request.getfixturevalue("postgres_database"))


@pytest.fixture
def approved_usecase(tmp_path: Path) -> Callable[[Settings], tuple[str, Path]]:
    """Create the churn team and use case through the demo's first chapter (DPIA approved with
    the condition postcode=generalize prefix 2, state in_development); returns (name, project)."""

    def make(settings: Settings) -> tuple[str, Path]:
        from valueloop.demo import DemoContext
        from valueloop.demo import outcomes as chapter

        workspace = tmp_path / f"workspace-{uuid.uuid4().hex[:6]}"
        workspace.mkdir()
        ctx = DemoContext(settings=settings, workspace=workspace, console=Console(file=io.StringIO()))
        chapter.run(ctx)
        return "churn", ctx.state["project"]

    return make


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``valueloop ARGS`` as a subprocess on the given settings; output is captured."""

    def run(
        settings: Settings, *args: str, as_user: str | None = None, cwd: Path | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VALUELOOP_")}
        env.update(settings.as_env(), COLUMNS="200", NO_COLOR="1")
        if as_user:
            env["VALUELOOP_USER"] = as_user
        return subprocess.run([sys.executable, "-m", "valueloop", *args], env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)

    return run
