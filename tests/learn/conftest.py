"""Fixtures of the Learn tests: the churn use case with a real dataset version."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from learn_support import FAST, ingest, set_model, untimed

from valueloop.config import Settings


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow database with its schema created once: creating one takes seconds."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def make_churn(approved_usecase: Callable[[Settings], tuple[str, Path]],
               empty_mlflow_db: Path) -> Callable[[Settings], tuple[str, Path]]:
    """Make the approved churn use case with its first dataset version (1,500 rows), two fast
    candidates, a threshold they reach on so few rows and no prediction time to miss."""

    def make(settings: Settings) -> tuple[str, Path]:
        name, project = approved_usecase(settings)
        target = Path(settings.mlflow_uri.removeprefix("sqlite:///"))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(empty_mlflow_db, target)
        set_model(settings, name, candidates=FAST, threshold=0.65, tests=untimed(settings, name))
        ingest(settings, name, project, rows=1500)
        return name, project

    return make


@pytest.fixture
def churn(settings: Settings, make_churn: Callable[[Settings], tuple[str, Path]]) -> tuple[str, Path]:
    return make_churn(settings)
