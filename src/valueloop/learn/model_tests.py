"""The model tests behind "tested and approved": each gives a name, a verdict and the numbers.

They run on the held-out test set (perturbations on a sample of it), after evaluation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from valueloop.learn.evaluation import at_least_as_good, scores
from valueloop.outcomes.spec import ModelObjective

if TYPE_CHECKING:
    import pandas as pd

    from valueloop.learn.dataset import Target

SAMPLE_ROWS = 1_000


class TestResult(BaseModel):
    __test__ = False  # not a pytest class

    name: str
    passed: bool
    detail: str


def run(model: Any, objective: ModelObjective, target: Target, test_frame: pd.DataFrame,
        features: list[str], evaluation: dict[str, Any], baseline: tuple[str, float] | None, seed: int,
        clock: Callable[[], float] = time.perf_counter) -> list[TestResult]:
    """Every test the use case declares, plus the threshold, the baseline and prediction time
    (measured on ``clock``, which a test replaces: a busy machine must not decide a verdict)."""
    metric, value = objective.primary_metric, evaluation["metrics"][objective.primary_metric]
    sample = test_frame.sample(min(len(test_frame), SAMPLE_ROWS), random_state=seed)
    results = [TestResult(
        name="threshold", passed=not math.isnan(value) and at_least_as_good(metric, value, objective.threshold),
        detail=f"{metric} {value:.4f} vs the use case's threshold {objective.threshold:g}",
    )]
    if baseline is not None:
        name, reference = baseline
        results.append(TestResult(
            name="baseline", passed=at_least_as_good(metric, value, reference),
            detail=f"{metric} {value:.4f} vs baseline '{name}' {reference:.4f}",
        ))
    base = scores(model, sample[features], target)
    for check in objective.tests.invariance:
        results.append(_invariance(model, target, sample, features, base, check, seed))
    for check in objective.tests.directional:
        changed = sample.copy()
        changed[check.column] = changed[check.column] + check.add
        delta = scores(model, changed[features], target) - base
        wrong = float(((delta < 0) if check.expect == "increase" else (delta > 0)).mean())
        moved = float(delta.mean())
        right_way = moved > 0 if check.expect == "increase" else moved < 0
        results.append(TestResult(
            name=f"directional:{check.column}",
            passed=right_way and wrong <= check.max_violations,
            detail=f"{check.column} {check.add:+g}: mean change {moved:+.4f} (expect {check.expect}), "
                   f"{wrong:.1%} of rows moved the other way (allowed {check.max_violations:.0%})",
        ))
    for floor in objective.tests.segment_floors:
        results.append(_floor(floor, objective.primary_metric, evaluation["segments"][floor.column]))
    started = clock()
    scores(model, sample[features], target)
    per_row = (clock() - started) / len(sample)
    bound = objective.tests.max_seconds_per_row
    results.append(TestResult(name="prediction_time", passed=per_row <= bound,
                              detail=f"{per_row * 1000:.4f} ms per row (bound {bound * 1000:g} ms) "
                                     f"on a batch of {len(sample)}"))
    return results


def _invariance(model: Any, target: Target, sample: pd.DataFrame, features: list[str], base: Any,
                check: Any, seed: int) -> TestResult:
    import numpy as np

    changed = sample.copy()
    column = check.column
    if check.change == "shuffle":
        changed[column] = np.random.default_rng(seed).permutation(changed[column].to_numpy())
    elif check.change == "set":
        changed[column] = check.value
    else:
        changed[column] = changed[column] + check.value
    moved = float(np.max(np.abs(scores(model, changed[features], target) - base)))
    how = check.change + ("" if check.change == "shuffle" else f" {check.value}")
    return TestResult(name=f"invariance:{column}", passed=moved <= check.tolerance,
                      detail=f"{column} {how}: largest change {moved:.6f} "
                             f"(tolerance {check.tolerance:g})")


def _floor(floor: Any, primary: str, per_segment: dict[str, dict[str, float]]) -> TestResult:
    metric = floor.metric or primary
    below, measured = [], 0
    for value, numbers in per_segment.items():
        if numbers["rows"] < floor.min_rows or math.isnan(numbers[metric]):
            continue
        measured += 1
        if not at_least_as_good(metric, numbers[metric], floor.floor):
            below.append(f"{value} {numbers[metric]:.4f}")
    detail = (f"{metric} per {floor.column} (segments with >= {floor.min_rows} rows: {measured}) "
              f"vs floor {floor.floor:g}")
    return TestResult(name=f"segment_floor:{floor.column}", passed=not below and measured > 0,
                      detail=detail + (f"; below: {', '.join(below)}" if below else
                                       "" if measured else "; no segment is large enough to judge"))
