"""MLflow as valueloop uses it: the tracking URI and artifact root from the settings, one
experiment per use case, the lineage tags, and models logged with explicit requirements."""

from __future__ import annotations

import os
import platform
import subprocess
import warnings
from functools import cache, lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valueloop.config import Settings

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models.model import ModelInfo

# No phoning home and no pip introspection: valueloop runs offline and names its requirements.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_UV_AUTO_DETECT", "false")
os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")

TAG = "valueloop."
MODEL_PATH = "model"
#: Packages a logged model needs at load time, pinned to what trained it.
_RUNTIME = ("mlflow", "scikit-learn", "numpy", "pandas", "scipy", "cloudpickle")
_REPORTED = _RUNTIME + ("lightgbm", "optuna", "pyarrow", "deltalake", "valueloop")


def configure(settings: Settings) -> None:
    """Point MLflow's fluent API (also what custom candidates call) at this installation."""
    import logging

    import mlflow

    from valueloop.storage import endpoint

    if url := endpoint():  # MLflow's S3 artifact repository reads only its own variable
        os.environ.setdefault("MLFLOW_S3_ENDPOINT_URL", url)
    for noisy in ("mlflow.sklearn", "mlflow.utils.environment", "mlflow.store.db.utils",
                  "mlflow.models.model", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    _create_tables(settings.mlflow_uri, settings.artifact_root)
    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)


@cache
def _create_tables(uri: str, artifact_root: str) -> None:
    """MLflow creates its tables on first use without a lock, so processes starting together
    on a fresh database (a server, its replicas, a training job) died with "table … already
    exists". Its stores are built here first, one process at a time."""
    if not uri.startswith(("sqlite:", "postgresql", "mysql", "mssql")):
        return  # a tracking server keeps its own database
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from valueloop.storage import Location
    from valueloop.store.db import exclusive

    url = make_url(uri)
    if url.drivername == "postgresql":  # MLflow's default driver; valueloop ships psycopg 3
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    try:
        with exclusive(engine, "migrate"):
            SqlAlchemyStore(uri, Location.parse(artifact_root, "artifact_root").child("mlflow").uri)
            RegistryStore(uri)
    finally:
        engine.dispose()


def client(settings: Settings) -> Any:
    from mlflow import MlflowClient

    configure(settings)
    return MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)


def artifact(mlflow_uri: str, run_id: str, path: str) -> bytes | None:
    """A file a run logged, or None when it logged none (a failed run)."""
    import tempfile

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = MlflowClient(tracking_uri=mlflow_uri).download_artifacts(run_id, path, tmp)
        except (MlflowException, OSError):
            return None
        return Path(local).read_bytes()


@lru_cache(maxsize=256)
def evaluation(mlflow_uri: str, run_id: str) -> dict[str, Any]:
    """The run's evaluation record (segments, calibration) as training logged it, or {} for a
    run that logged none; a run never changes, so it is kept once read."""
    import json

    found = artifact(mlflow_uri, run_id, "evaluation.json")
    return json.loads(found) if found else {}


def experiment(settings: Settings, usecase: str) -> str:
    """The use case's experiment id, created with its artifacts under the artifact root (a
    folder or s3:// prefix); a tracking server (http/https) keeps them where it is told to."""
    from valueloop.storage import Location

    mlflow_client = client(settings)
    found = mlflow_client.get_experiment_by_name(usecase)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if not settings.mlflow_uri.startswith(("http://", "https://")):
        root = Location.parse(settings.artifact_root, "artifact_root").child("mlflow", usecase)
        location = Path(root.path).as_uri() if root.is_local else root.uri
    return str(mlflow_client.create_experiment(usecase, artifact_location=location,
                                               tags={TAG + "usecase": usecase}))


def git_commit() -> str | None:
    """The commit of the code that trains, when it runs from a git checkout."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


@cache
def package_versions() -> dict[str, str]:
    found = {p: _version(p) for p in _REPORTED}
    return {"python": platform.python_version()} | {p: v for p, v in found.items() if v}


def requirements(kind: str) -> list[str]:
    extra = ("lightgbm",) if kind in ("lightgbm", "custom") else ()
    return [f"{p}=={v}" for p in _RUNTIME + extra if (v := _version(p))]


def log_run(settings: Settings, run_id: str, *, params: dict[str, Any], metrics: dict[str, float],
            tags: dict[str, str], documents: dict[str, Any]) -> None:
    """A finished candidate's record in two writes, not one per value or file: params, metrics
    and tags in one ``log_batch``; the JSON documents in one artifact upload."""
    import json
    import tempfile
    import time

    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    mlflow_client = client(settings)
    mlflow_client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                            params=[Param(k, str(v)) for k, v in params.items()],
                            tags=[RunTag(k, v) for k, v in tags.items()])
    with tempfile.TemporaryDirectory(prefix="valueloop-run-") as folder:
        for name, document in documents.items():
            Path(folder, name).write_text(json.dumps(document, indent=2))
        mlflow_client.log_artifacts(run_id, folder)


def log_model(model: Any, kind: str, example: pd.DataFrame, task: str,
              code_paths: list[str] | None, serving: dict[str, Any] | None = None) -> ModelInfo:
    """The model in MLflow's format: signature, input example, explicit pip requirements, and the
    pipeline serving applies to raw records (in the MLmodel file's metadata, under the digest).

    A classifier's pyfunc returns ``predict_proba`` (one column per class): scoring needs the risk.
    """
    from valueloop.data.serving import METADATA_KEY

    import mlflow.sklearn
    from mlflow.models import infer_signature

    method = "predict_proba" if task == "classification" else "predict"
    with warnings.catch_warnings():  # the hint that integer columns cannot hold missing values
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(example, getattr(model, method)(example))
    return mlflow.sklearn.log_model(
        model, name=MODEL_PATH, signature=signature, input_example=example,
        pip_requirements=requirements(kind), serialization_format="cloudpickle",
        pyfunc_predict_fn=method, code_paths=code_paths,
        metadata={METADATA_KEY: serving} if serving is not None else None,
    )
