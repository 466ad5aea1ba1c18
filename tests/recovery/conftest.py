"""The churn use case with a small CRM export, as the Data tests start from it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from data.data_support import churn_with_export

from valueloop.config import Settings


@pytest.fixture
def churn(settings: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]]) -> Path:
    """The approved churn use case with 600 customers; returns its project directory."""
    return churn_with_export(settings, approved_usecase, 600)
