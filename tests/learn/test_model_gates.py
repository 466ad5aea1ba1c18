"""Each model-test gate fails on a model that should fail it and passes on one that should pass:
the threshold, no worse than the baseline, invariance on a real input, directional, segment
floors and prediction time. Real scikit-learn models on a small synthetic frame where ``signal``
decides the label and ``noise`` and ``segment`` do not; prediction time runs on a given clock, so
a busy machine decides nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from valueloop.learn import evaluation, model_tests
from valueloop.learn.dataset import Target
from valueloop.outcomes.spec import ModelObjective

FEATURES = ["signal", "noise", "segment"]
BINARY = Target("binary", (0, 1), 1)


def _frame(seed: int, flip: str | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows whose label follows ``signal``; in segment ``flip`` (if any) it runs the other way."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"signal": rng.normal(size=800), "noise": rng.normal(size=800),
                          "segment": np.where(np.arange(800) % 2, "b", "a")})
    y = (frame["signal"] + 0.5 * rng.normal(size=800) > 0).to_numpy().astype(int)
    if flip is not None:
        y = np.where(frame["segment"] == flip, 1 - y, y)
    return frame, y


def _model(columns: list[str], flip: bool = False) -> Any:
    """A logistic regression that reads only ``columns`` of the features (the rest pass unused)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    frame, y = _frame(seed=1)
    model = make_pipeline(ColumnTransformer([("used", "passthrough", columns)]), LogisticRegression())
    return model.fit(frame[FEATURES], 1 - y if flip else y)


def _clock(seconds: float) -> Callable[[], float]:
    """A clock on which the one timed prediction takes ``seconds``; read more than twice, it fails."""
    return iter([0.0, seconds]).__next__


def _verdicts(model: Any, tests: dict[str, Any], *, threshold: float = 0.0, flip: str | None = None,
              baseline: tuple[str, float] | None = None, seconds: float = 0.0) -> dict[str, bool]:
    """Each gate's verdict on the held-out frame, as training would call the tests."""
    frame, y = _frame(seed=2, flip=flip)
    objective = ModelObjective(task="classification", target="label", primary_metric="roc_auc",
                               threshold=threshold, segments=["segment"], tests=tests)
    score = evaluation.scores(model, frame[FEATURES], BINARY)
    evaluated = {"metrics": evaluation.metrics(y, score, BINARY),
                 "segments": evaluation.segments(frame, ["segment"], y, score, BINARY)}
    results = model_tests.run(model, objective, BINARY, frame, FEATURES, evaluated, baseline, seed=42,
                              clock=_clock(seconds))
    return {r.name: r.passed for r in results}


def _auc(model: Any) -> float:
    frame, y = _frame(seed=2)
    return evaluation.metrics(y, evaluation.scores(model, frame[FEATURES], BINARY), BINARY)["roc_auc"]


def test_a_sound_model_passes_every_gate() -> None:
    good = _model(["signal"])
    tests = {"invariance": [{"column": "noise"}, {"column": "segment", "change": "set", "value": "a"}],
             "directional": [{"column": "signal", "add": 1, "expect": "increase"}],
             "segment_floors": [{"column": "segment", "floor": 0.8, "min_rows": 100}],
             "max_seconds_per_row": 0.005}
    verdicts = _verdicts(good, tests, threshold=0.8, baseline=("noise only", _auc(_model(["noise"]))),
                         seconds=0.001 * 800)
    assert verdicts == {"threshold": True, "baseline": True, "invariance:noise": True,
                        "invariance:segment": True, "directional:signal": True,
                        "segment_floor:segment": True, "prediction_time": True}


def test_the_threshold_gate_fails_a_model_that_misses_it() -> None:
    assert _verdicts(_model(["signal"]), {}, threshold=0.8)["threshold"]
    assert _verdicts(_model(["noise"]), {}, threshold=0.8) == {"threshold": False, "prediction_time": True}


def test_the_baseline_gate_fails_a_model_worse_than_the_baseline() -> None:
    baseline = ("signal only", _auc(_model(["signal"])))
    assert _verdicts(_model(["signal"]), {}, baseline=baseline)["baseline"]
    assert not _verdicts(_model(["noise"]), {}, baseline=baseline)["baseline"]


@pytest.mark.parametrize("check", [{"column": "noise"}, {"column": "noise", "change": "add", "value": 1},
                                   {"column": "noise", "change": "set", "value": 0}])
def test_the_invariance_gate_fails_a_model_that_reads_the_column(check: dict[str, Any]) -> None:
    tests = {"invariance": [check]}
    assert _verdicts(_model(["signal"]), tests)["invariance:noise"], "the model does not read noise"
    assert not _verdicts(_model(["signal", "noise"]), tests)["invariance:noise"]


def test_the_directional_gate_fails_a_model_that_moves_the_wrong_way() -> None:
    tests = {"directional": [{"column": "signal", "add": 1, "expect": "increase"}]}
    assert _verdicts(_model(["signal"]), tests)["directional:signal"]
    assert not _verdicts(_model(["signal"], flip=True), tests)["directional:signal"]


def test_the_segment_floor_fails_a_model_poor_on_one_segment_or_with_none_to_judge() -> None:
    floor = {"column": "segment", "floor": 0.8, "min_rows": 100}
    good = _model(["signal"])
    assert _verdicts(good, {"segment_floors": [floor]})["segment_floor:segment"]
    assert not _verdicts(good, {"segment_floors": [floor]}, flip="b")["segment_floor:segment"]
    too_few = floor | {"min_rows": 10_000}
    assert not _verdicts(good, {"segment_floors": [too_few]})["segment_floor:segment"]


def test_the_prediction_time_gate_reads_its_clock() -> None:
    good = _model(["signal"])
    tests = {"max_seconds_per_row": 0.005}
    assert _verdicts(good, tests, seconds=0.005 * 800)["prediction_time"], "exactly the bound passes"
    assert not _verdicts(good, tests, seconds=0.006 * 800)["prediction_time"]
