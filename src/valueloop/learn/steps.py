"""Where a training's wall time goes, step by step: reported with the training (``steps`` of the
report and of each candidate) and logged on each candidate's MLflow run as
``valueloop.step_seconds.<step>``, so a slow training says which step made it slow."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

METRIC_PREFIX = "valueloop.step_seconds."


@contextmanager
def timed(steps: dict[str, float], name: str) -> Iterator[None]:
    """Add the wall seconds of the block to ``steps[name]`` (also when it raises)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        steps[name] = round(steps.get(name, 0.0) + time.perf_counter() - started, 3)
