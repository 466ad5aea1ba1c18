"""The churn use case, approved, with a small CRM export in its project directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from data.data_support import churn_with_export

from valueloop.config import Settings

ROWS = 600


@pytest.fixture
def churn(settings: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]]) -> Path:
    """The approved churn use case; returns its project directory, data included."""
    return churn_with_export(settings, approved_usecase, ROWS)
