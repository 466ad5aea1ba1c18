"""The churn use case, approved, with a small CRM export: what the Data phase's attacks start from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from data.data_support import SMALL_EXPORT, churn_with_export

from valueloop.config import Settings


@pytest.fixture
def churn(settings: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]]) -> Path:
    return churn_with_export(settings, approved_usecase, SMALL_EXPORT)
