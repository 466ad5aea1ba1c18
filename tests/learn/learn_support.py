"""Helpers of the Learn tests: change the use case's model section, ingest a dataset version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from valueloop.config import Settings
from valueloop.examples import load_generator

FAST = [{"name": "logistic", "kind": "logistic", "baseline": True},
        {"name": "lightgbm", "kind": "lightgbm", "params": {"n_estimators": 40}}]


def untimed(settings: Settings, name: str) -> dict[str, Any]:
    """The use case's model tests with a prediction-time bound no runner misses, however busy:
    fixtures must register their models (the gate itself is tested on a given clock)."""
    from deploy_support import UNTIMED
    from valueloop.outcomes.usecases import get_usecase
    from valueloop.store import session

    with session(settings) as s:
        return get_usecase(s, name).spec["model"]["tests"] | UNTIMED


def set_model(settings: Settings, name: str, **changes: Any) -> None:
    """Replace fields of the use case's model section."""
    from valueloop.outcomes.spec import parse_spec
    from valueloop.outcomes.usecases import get_usecase, update_usecase
    from valueloop.store import session

    with session(settings) as s:
        data = get_usecase(s, name).spec
        data["model"] = data["model"] | changes
        update_usecase(s, "ana", parse_spec(data))


def ingest(settings: Settings, name: str, project: Path, rows: int, seed: int = 7) -> int:
    """A new dataset version of generated churn data, through the Data phase."""
    from valueloop.data import ingest as ingest_
    from valueloop.store import session

    load_generator("churn").write(project / "data", rows, seed)
    with session(settings) as s:
        return ingest_(s, settings, "dave", name, project_dir=project).version
