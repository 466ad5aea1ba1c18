"""The whole loop for each common task on data the tests make (binary with the positive class
"left" and a threshold chosen for recall >= 0.7, multiclass with three classes, regression):
train, serve over real HTTP, feedback, monitor, retrain. The served answer gives the label and,
for a classifier, the positive class's probability (binary) or every class's (multiclass); the
monitor and the retraining comparison measure the metrics of the named class."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from deploy_support import start_server, wait_for
from operate.support import requests_of
from sqlalchemy import select
from tasks_support import MODELS, label, make_task, write_export

from valueloop.config import Settings
from valueloop.examples import load_generator
from valueloop.store import session

ROWS = 240
POLICY = {"window": {"rows": 10_000},
          "retrain": {"triggers": ["manual"], "min_labels": 100, "candidates": ["lightgbm"]}}


def _champion(settings: Settings) -> dict[str, Any]:
    """Train, accept and promote the first model; put the use case in production; its target."""
    from valueloop.learn.registry import accept, promote
    from valueloop.learn.tables import ModelVersion, TrainingRun
    from valueloop.learn.training import train
    from valueloop.outcomes.lifecycle import State
    from valueloop.outcomes.usecases import advance

    with session(settings) as s:
        report = train(s, settings, "dana", "churn")
        assert report.registered is not None, report
        version = report.registered.version
        accept(s, "olivia", "churn", version, accepted=True, comment="meets the targets")
        promote(s, settings, "dana", "churn", version, "champion")
        advance(s, "devon", "churn", State.in_production, "deployed")
    with session(settings) as s:
        run_id = s.scalar(select(ModelVersion.run_id).where(ModelVersion.version == version))
        return s.scalar(select(TrainingRun.target).where(TrainingRun.run_id == run_id))


def _check_answer(task: str, target: dict[str, Any], answer: dict[str, Any]) -> None:
    [predicted] = answer["predictions"]
    if task == "regression":
        assert isinstance(predicted, float) and "probabilities" not in answer
    elif task == "binary":  # the probability of "left", decided at the model's threshold
        [probability] = answer["probabilities"]
        assert predicted == ("left" if probability >= target["threshold"] else "stayed")
    else:
        [every] = answer["probabilities"]
        assert set(every) == {"left", "loyal", "new"} and sum(every.values()) == pytest.approx(1)
        assert predicted == max(every, key=every.get)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_train_serve_feedback_monitor_retrain(settings: Settings, task: str,
                                              approved_usecase: Callable[[Settings], tuple[str, Path]]) -> None:
    from sklearn import metrics as m

    from valueloop.operate.monitor import run_monitor
    from valueloop.operate.retrain import retrain
    from valueloop.outcomes.users import create_token

    project = approved_usecase(settings)[1]
    make_task(settings, task, project, operate=POLICY)
    target = _champion(settings)
    raw = label(load_generator("churn").generate(ROWS, 11, 0), task)
    rows, truth = requests_of(raw).to_pylist(), raw["churned"].to_pylist()

    server, thread, url = start_server(settings)
    try:
        with session(settings) as s:
            dana, eve = (create_token(s, u, f"{task}-{u}").token for u in ("dana", "eve"))
        predicted = []
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {dana}"}, timeout=30) as client:
            for i, row in enumerate(rows):
                answer = client.post("/predict/churn", json=row, headers={"X-Request-Id": f"r{i}"})
                assert answer.status_code == 200, answer.text
                _check_answer(task, target, answer.json())
                predicted.append(answer.json()["predictions"][0])
        labels = [{"request_id": f"r{i}", "label": t} for i, t in enumerate(truth)]

        def all_recorded() -> bool:  # once the log writer has flushed every prediction
            done = httpx.post(f"{url}/feedback/churn", json=labels, headers={"Authorization": f"Bearer {eve}"})
            assert done.status_code == 200, done.text
            return not done.json().get("unknown")
        wait_for(all_recorded, 60)
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(10)

    window = run_monitor(settings, "oscar", "churn").windows[-1]
    assert window.rows == ROWS and window.labeled == ROWS
    measured = window.performance
    if task == "binary":
        assert measured["recall"] == pytest.approx(m.recall_score(truth, predicted, pos_label="left"))
        assert measured["precision"] == pytest.approx(m.precision_score(truth, predicted, pos_label="left"))
        assert "roc_auc" in measured and {"accuracy", "recall"} <= set(window.estimate)
    elif task == "multiclass":
        assert measured["accuracy"] == pytest.approx(m.accuracy_score(truth, predicted))
        assert measured["f1"] == pytest.approx(m.f1_score(truth, predicted, average="macro"))
        assert 0 < window.estimate["accuracy"] <= 1
    else:
        assert measured["rmse"] == pytest.approx(m.root_mean_squared_error(truth, predicted))
        assert window.estimate == {}
    assert window.prediction_drift is not None, window.problems

    write_export(project, task, 1500, seed=13)
    done = retrain(settings, "oscar", "churn")
    metric = MODELS[task][0]["primary_metric"]
    assert done.comparison is not None and done.comparison["labeled_rows"] == ROWS, done
    assert metric in done.comparison["champion"] and metric in done.comparison["challenger"], done.comparison
    if task == "binary":  # the champion's own recall on the labeled window, as the monitor measured it
        assert done.comparison["champion"]["recall"] == pytest.approx(measured["recall"])
    else:
        assert np.isfinite(done.comparison["champion"][metric])
