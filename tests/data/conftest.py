"""The churn use case, approved, with a small CRM export in its project directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from valueloop.config import Settings
from valueloop.examples import load_generator

ROWS = 600


@pytest.fixture
def churn(settings: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]]) -> Path:
    """The approved churn use case on SQLite; returns its project directory, data included."""
    _, project = approved_usecase(settings)
    load_generator("churn").write(project / "data", rows=ROWS, seed=7)
    return project
