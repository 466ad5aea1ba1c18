"""Fixtures of batch and stream scoring: a registered champion, input files, a real redis-server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from valueloop.config import Settings
from valueloop.examples import load_generator

FEATURES = ["contract", "tenure_months", "monthly_charges", "support_calls", "payment_method"]


def churn_rows(rows: int, seed: int = 7) -> pa.Table:
    return load_generator("churn").generate(rows, seed)


@pytest.fixture
def champion(settings: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]]) -> str:
    """The churn use case with a small gradient boosting model registered as its champion."""
    import mlflow
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import make_pipeline

    from valueloop.learn import tracking
    from valueloop.learn.candidates import make_preprocessor

    name, _ = approved_usecase(settings)
    frame = churn_rows(2000).to_pandas()
    X, y = frame[FEATURES], frame["churned"]
    model = make_pipeline(make_preprocessor(["tenure_months", "monthly_charges", "support_calls"],
                                            ["contract", "payment_method"]),
                          GradientBoostingClassifier(n_estimators=30, random_state=0)).fit(X, y)
    client = tracking.client(settings)
    with mlflow.start_run(experiment_id=tracking.experiment(settings, name)):
        info = tracking.log_model(model, "custom", X.head(5), "classification", None)
    version = mlflow.register_model(info.model_uri, name)
    client.set_registered_model_alias(name, "champion", version.version)
    return name


@pytest.fixture
def churn_parquet(tmp_path: Path) -> Path:
    path = tmp_path / "input" / "customers.parquet"
    path.parent.mkdir()
    pq.write_table(churn_rows(5000, seed=11), path, row_group_size=1000)
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
