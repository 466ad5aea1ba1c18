"""Fixtures of batch and stream scoring: a registered champion, input files, a real redis-server."""

from __future__ import annotations

import importlib.util
import io
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from valueloop.config import Settings, load_settings
from valueloop.examples import load_generator

def _root_conftest():  # type: ignore[no-untyped-def]
    """tests/conftest.py as a module: this directory's conftest shadows the name ``conftest``."""
    spec = importlib.util.spec_from_file_location("valueloop_root_conftest", Path(__file__).parents[1] / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


settings_env = _root_conftest().settings_env

FAST = [{"name": "logistic", "kind": "logistic", "baseline": True},
        {"name": "lightgbm", "kind": "lightgbm", "params": {"n_estimators": 30}}]


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A home where churn has a dataset version and a lightgbm champion, made once through the
    Data and Learn services (ingest, train, accept, promote); tests get a copy of it."""
    from rich.console import Console

    from valueloop.data import ingest
    from valueloop.demo import DemoContext
    from valueloop.demo import outcomes as chapter
    from valueloop.learn.registry import accept, promote
    from valueloop.learn.training import train
    from valueloop.outcomes.spec import parse_spec
    from valueloop.outcomes.usecases import get_usecase, update_usecase
    from valueloop.store import session

    root = tmp_path_factory.mktemp("batch-template")
    settings = load_settings({"VALUELOOP_HOME": str(root / "home")})
    ctx = DemoContext(settings=settings, workspace=root, console=Console(file=io.StringIO()))
    chapter.run(ctx)
    project = ctx.state["project"]
    with session(settings) as s:
        data = get_usecase(s, "churn").spec
        data["model"] = data["model"] | {"candidates": FAST}
        update_usecase(s, "ana", parse_spec(data))
    load_generator("churn").write(project / "data", 3000, 7)
    with session(settings) as s:
        ingest(s, settings, "dave", "churn", project_dir=project)
    with session(settings) as s:
        version = train(s, settings, "dana", "churn", candidates=["lightgbm"]).registered.version
    with session(settings) as s:
        accept(s, "olivia", "churn", version, accepted=True, comment="good enough to score")
    with session(settings) as s:
        promote(s, settings, "dana", "churn", version, "champion")
    return settings


@pytest.fixture
def champion(settings: Settings, trained_home: Settings) -> str:
    """This test's home, a copy of the trained one: churn with a dataset version and a champion."""
    shutil.copytree(trained_home.home, settings.home)
    return "churn"


@pytest.fixture
def churn_parquet(settings: Settings, champion: str, tmp_path: Path) -> Path:
    """The newest dataset version exported to a Parquet file with several row groups."""
    from valueloop.data import read_version
    from valueloop.store import session

    with session(settings) as s:
        table = read_version(s, champion)
    path = tmp_path / "input" / "customers.parquet"
    path.parent.mkdir()
    pq.write_table(table, path, row_group_size=500)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """URL of a real redis-server on a loopback port, for the whole test session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: `apt-get install redis-server` (see .ci/run)")
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="valueloop-redis-")
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", workdir],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
