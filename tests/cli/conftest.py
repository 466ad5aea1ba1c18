"""Fixtures of the CLI tests: a check that a command was refused cleanly."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

Refused = Callable[[subprocess.CompletedProcess[str], int, str], None]


@pytest.fixture
def refused() -> Refused:
    """Assert the command failed with this exit code and message, and without a traceback."""

    def check(result: subprocess.CompletedProcess[str], exit_code: int, message: str) -> None:
        assert result.returncode == exit_code, (result.returncode, result.stdout, result.stderr)
        assert message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr + result.stdout

    return check
