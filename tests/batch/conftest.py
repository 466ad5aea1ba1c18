"""Fixtures of batch and stream scoring: a registered champion, input files, a real redis-server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import deploy_support
import pytest

from valueloop.config import Settings, load_settings


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A home where churn has a dataset version and a lightgbm champion, made once through the
    Data and Learn services (ingest, train, accept, promote); tests get a copy of it."""
    root = tmp_path_factory.mktemp("batch-template")
    settings = load_settings({"VALUELOOP_HOME": str(root / "home")})
    deploy_support.make_usecase(settings, root / "workspace")
    deploy_support.train_version(settings, "champion")
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


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """URL of a real redis-server on a loopback port, for the whole test session."""
    from valueloop.deploy.redis_server import installed, local_redis_server

    if not installed():
        pytest.fail("redis-server is not installed: `apt-get install redis-server` (see .ci/run)")
    with local_redis_server() as url:
        yield url


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's redis-server, emptied for this test."""
    import redis

    with redis.Redis.from_url(redis_server) as client:
        client.flushdb()
    return redis_server
