"""Each common tabular task trains on data the tests make: binary with a named positive class and
a decision threshold chosen on validation rows for a recall KPI, multiclass with three classes,
and regression; the metrics are those of the named class, at the model's threshold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tasks_support import make_task

from valueloop.config import Settings
from valueloop.errors import InvalidInput
from valueloop.learn.registry import load_model
from valueloop.learn.training import train
from valueloop.store import session


@pytest.fixture
def usecase(settings: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]]) -> Path:
    return approved_usecase(settings)[1]


def _test_rows(settings: Settings, version: int):  # type: ignore[no-untyped-def]
    from valueloop.data import read_version
    from valueloop.learn.tables import TrainingRun, ModelVersion
    from sqlalchemy import select

    with session(settings) as s:
        row = s.scalar(select(ModelVersion).where(ModelVersion.version == version))
        run = s.scalar(select(TrainingRun).where(TrainingRun.run_id == row.run_id))
        frame = read_version(s, "churn", run.dataset_version).to_pandas()
        model = load_model(s, settings, "churn", version).get_raw_model()
        return frame.iloc[sorted(_cut(frame, run.split))], model, run


def _cut(frame, record):  # type: ignore[no-untyped-def]
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(frame)), test_size=record["test_rows"], random_state=record["seed"],
                            stratify=frame["churned"] if record["kind"] == "stratified" else None)[1]


def test_binary_recall_is_of_the_named_class_at_a_threshold_chosen_for_the_kpi(settings: Settings,
                                                                                 usecase: Path) -> None:
    from sklearn.metrics import recall_score

    make_task(settings, "binary", usecase)
    with session(settings) as s:
        report = train(s, settings, "dana", "churn")
    assert report.registered is not None, report
    best = next(r for r in report.results if r.candidate == report.best)
    chosen = next(t for t in best.tests if t.name == "decision_threshold")
    assert chosen.passed, chosen
    frame, model, run = _test_rows(settings, report.registered.version)
    assert run.target["positive"] == "left" and run.target["classes"] == ["left", "stayed"]
    threshold = run.target["threshold"]
    assert 0 < threshold < 0.5  # "left" is the rarer class: meeting recall >= 0.7 takes a lower bar
    features = run.features
    # the model carries its threshold: predict gives "left" from that probability of "left" on
    left = list(model.classes_).index("left")
    probability = model.predict_proba(frame[features])[:, left]
    predicted = model.predict(frame[features])
    assert (predicted == np.where(probability >= threshold, "left", "stayed")).all()
    assert best.metrics["recall"] == pytest.approx(recall_score(frame["churned"], predicted, pos_label="left"))
    kpi = next(k for k in report.registered.kpis if k.name == "recall")
    assert kpi.value == best.metrics["recall"]


def test_multiclass_trains_on_three_classes(settings: Settings, usecase: Path) -> None:
    from sklearn.metrics import accuracy_score, f1_score

    make_task(settings, "multiclass", usecase)
    with session(settings) as s:
        report = train(s, settings, "dana", "churn")
    assert report.registered is not None, report
    best = next(r for r in report.results if r.candidate == report.best)
    frame, model, run = _test_rows(settings, report.registered.version)
    assert run.target == {"task": "multiclass", "classes": ["left", "loyal", "new"], "positive": None,
                          "threshold": 0.5}
    predicted = model.predict(frame[run.features])
    assert set(predicted) == {"left", "loyal", "new"}
    assert best.metrics["accuracy"] == pytest.approx(accuracy_score(frame["churned"], predicted))
    assert best.metrics["f1"] == pytest.approx(f1_score(frame["churned"], predicted, average="macro"))
    assert {"roc_auc", "log_loss", "pr_auc"} <= set(best.metrics)


def test_regression_still_trains(settings: Settings, usecase: Path) -> None:
    make_task(settings, "regression", usecase)
    with session(settings) as s:
        report = train(s, settings, "dana", "churn")
    assert report.registered is not None, report
    assert {"rmse", "mae", "r2"} <= set(report.results[0].metrics)


def test_a_positive_class_that_is_no_class_is_named(settings: Settings, usecase: Path) -> None:
    from learn_support import set_model

    make_task(settings, "binary", usecase)
    set_model(settings, "churn", positive_class="churner")
    with session(settings) as s, pytest.raises(InvalidInput, match=r"positive_class: 'churner' is not a class"
                                                                     r".*'left', 'stayed'"):
        train(s, settings, "dana", "churn")
