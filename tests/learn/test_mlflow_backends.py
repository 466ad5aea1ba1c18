"""MLflow beyond SQLite: its SQLAlchemy store on PostgreSQL, and a tracking server (``mlflow
server`` on PostgreSQL with its artifacts on a real S3-compatible server) that valueloop reaches
over HTTP. Training registers a model through each, and the model loads back, its digest checked."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import deploy_support
import psycopg
import pytest

from valueloop.config import Settings, load_settings
from valueloop.storage import Location


@pytest.fixture(scope="module")
def tracking_server(postgres_server: str, s3_server: str, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[tuple[str, str]]:
    """(URL, artifacts s3:// prefix) of an MLflow tracking server on PostgreSQL and S3."""
    import boto3

    bucket = f"mlflow-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    log = tmp_path_factory.mktemp("mlflow-server") / "log"
    with deploy_support.mlflow_server(postgres_server, f"s3://{bucket}/artifacts", log) as (url, process):
        deploy_support.wait_until_ready(url, process, 180, "/health")
        if process.poll() is not None:
            pytest.fail(f"mlflow server did not start: {log.read_text()[-800:]}")
        yield url, f"s3://{bucket}/artifacts"


def _train_and_load(settings: Settings, tmp_path: Path) -> None:
    from valueloop.learn.registry import load_model
    from valueloop.store import session

    deploy_support.make_usecase(settings, tmp_path / "workspace")
    version = deploy_support.train_version(settings, candidate="logistic")
    with session(settings) as s:
        assert load_model(s, settings, "churn", version).metadata.get_input_schema() is not None


def test_mlflow_on_postgresql(tmp_path: Path, postgres_server: str) -> None:
    """valueloop's experiment, a run and a registered version in MLflow's SQLAlchemy store on
    PostgreSQL (a whole training is the tracking server's test below)."""
    import mlflow
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from valueloop.learn import tracking

    mlflow_db = deploy_support.new_database(postgres_server, "mlflow")
    settings = load_settings({"VALUELOOP_HOME": str(tmp_path / "home"), "VALUELOOP_MLFLOW_URI": mlflow_db})
    experiment = tracking.experiment(settings, "churn")
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    with mlflow.start_run(experiment_id=experiment):
        logged = tracking.log_model(LogisticRegression().fit(frame, [0, 0, 1, 1]), "logistic", frame,
                                    "classification", None)
    version = mlflow.register_model(logged.model_uri, "churn")
    loaded = mlflow.pyfunc.load_model(f"models:/churn/{version.version}")
    assert len(loaded.predict(frame)) == 4
    with psycopg.connect(mlflow_db.replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM model_versions").fetchone()[0] == 1
    assert (settings.home / "artifacts" / "mlflow" / "churn").is_dir() and not (settings.home / "mlflow.db").exists()


def test_mlflow_tracking_server_with_artifacts_on_s3(tmp_path: Path, tracking_server: tuple[str, str]) -> None:
    import pyarrow.fs as pafs

    url, artifacts = tracking_server
    settings = load_settings({"VALUELOOP_HOME": str(tmp_path / "home"), "VALUELOOP_MLFLOW_URI": url})
    _train_and_load(settings, tmp_path)
    where = Location.parse(artifacts, "t")
    stored = where.filesystem.get_file_info(pafs.FileSelector(where.path, recursive=True))
    assert any(i.base_name == "MLmodel" for i in stored), "the model's files are on S3"
    assert not (settings.home / "artifacts" / "mlflow").exists() and not (settings.home / "mlflow.db").exists()
