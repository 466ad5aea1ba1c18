"""Evaluation's numbers: every metric as scikit-learn computes it from the classes themselves, and
permutation importance as scikit-learn's, from one model call per batch of shuffled copies."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as m
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import Pipeline

from valueloop.learn import evaluation
from valueloop.learn.candidates import make_preprocessor
from valueloop.learn.dataset import Target


class Counting(LogisticRegression):
    """A real estimator that counts the rows of each predict_proba call."""

    calls: list[int] = []

    def predict_proba(self, X: Any) -> np.ndarray:
        Counting.calls.append(X.shape[0])
        return super().predict_proba(X)


def _frame(rows: int, seed: int = 3) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"tenure": rng.integers(0, 60, rows), "charges": rng.normal(50, 10, rows),
                          "contract": rng.choice(["month", "year", "two years"], rows),
                          "noise": rng.normal(0, 1, rows)})
    risk = -0.05 * frame["tenure"] + 0.04 * frame["charges"] + (frame["contract"] == "month") - 1
    y = pd.Series(np.where(rng.random(rows) < 1 / (1 + np.exp(-risk)), "yes", "no"), name="churned")
    return frame, y


def _model(X: pd.DataFrame, y: pd.Series, target: Target) -> FixedThresholdClassifier:
    pipeline = Pipeline([("preprocess", make_preprocessor(["tenure", "charges", "noise"], ["contract"])),
                         ("model", Counting())]).fit(X, y)
    return FixedThresholdClassifier(pipeline, threshold=target.threshold, pos_label=target.positive,
                                    response_method="predict_proba")


@pytest.mark.parametrize("classes", [("no", "yes"), (0, 1), (False, True)])
def test_binary_metrics_are_scikit_learns_of_the_classes(classes: tuple[Any, Any]) -> None:
    rng = np.random.default_rng(5)
    score = rng.random(4000)
    y = np.where(rng.random(4000) < score, classes[1], classes[0]).astype(object)
    target = Target("binary", classes, classes[1], 0.4)
    label = np.where(score >= 0.4, classes[1], classes[0])
    truth = (y == classes[1]).astype(int)
    how = {"pos_label": classes[1], "zero_division": 0}
    expected = {"accuracy": m.accuracy_score(list(y), list(label)),
                "precision": m.precision_score(list(y), list(label), **how),
                "recall": m.recall_score(list(y), list(label), **how),
                "f1": m.f1_score(list(y), list(label), **how),
                "roc_auc": m.roc_auc_score(truth, score), "pr_auc": m.average_precision_score(truth, score),
                "log_loss": m.log_loss(truth, score), "brier": m.brier_score_loss(truth, score)}
    assert evaluation.metrics(y, score, target) == pytest.approx(expected, rel=1e-12)
    # a segment of one class: the ranking metrics are undefined, the others are not
    alone = evaluation.metrics(y[truth == 1], score[truth == 1], target)
    assert np.isnan(alone["roc_auc"]) and alone["recall"] == pytest.approx(m.recall_score(
        list(y[truth == 1]), list(label[truth == 1]), **how))


def test_multiclass_metrics_are_scikit_learns_of_the_classes() -> None:
    rng = np.random.default_rng(6)
    classes = ("a", "b", "c")
    score = rng.dirichlet([1, 1, 1], 3000)
    y = np.array([rng.choice(classes, p=p) for p in score], dtype=object)
    target = Target("multiclass", classes)
    label = np.array(classes)[score.argmax(axis=1)]
    onehot = np.array([[v == c for c in classes] for v in y], int)
    how = {"labels": list(classes), "average": "macro", "zero_division": 0}
    expected = {"accuracy": m.accuracy_score(y.astype(str), label),
                "precision": m.precision_score(y.astype(str), label, **how),
                "recall": m.recall_score(y.astype(str), label, **how),
                "f1": m.f1_score(y.astype(str), label, **how),
                "roc_auc": m.roc_auc_score(onehot, score, average="macro"),
                "pr_auc": m.average_precision_score(onehot, score, average="macro"),
                "log_loss": m.log_loss(onehot, score)}
    assert evaluation.metrics(y, score, target) == pytest.approx(expected, rel=1e-12)


def test_importance_is_scikit_learns_from_one_model_call() -> None:
    X, y = _frame(3000)
    target = Target("binary", ("no", "yes"), "yes", 0.5)
    model = _model(X, y, target)
    score = evaluation.scores(model, X, target)

    Counting.calls.clear()
    ranking = evaluation.importance(model, X, y, score, "roc_auc", target, seed=42)
    rows = evaluation.IMPORTANCE_ROWS
    # the unshuffled sample's score is the evaluation's; every shuffled copy is predicted at once
    assert Counting.calls == [rows * evaluation.IMPORTANCE_REPEATS * X.shape[1]]

    def scoring(estimator: Any, X: pd.DataFrame, y: pd.Series) -> float:
        return evaluation.single_metric("roc_auc", y.to_numpy(), evaluation.scores(estimator, X, target), target)

    sample = X.sample(rows, random_state=42)
    expected = permutation_importance(model, sample, y.loc[sample.index], scoring=scoring,
                                      n_repeats=evaluation.IMPORTANCE_REPEATS, random_state=42)
    assert ranking == pytest.approx(dict(zip(X.columns, expected.importances_mean)), abs=1e-12)
    assert list(ranking)[0] == "tenure" and ranking["noise"] < ranking["tenure"]
