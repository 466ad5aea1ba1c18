"""Model KPIs from labels joined to predictions by request id, and, before labels arrive, an
estimate from the predicted probabilities that assumes they are calibrated."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from valueloop.learn.dataset import Target


def token(value: Any) -> str:
    """One spelling for a class across the log and the labels (1, 1.0, True and "1" agree)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def as_tokens(target: Target) -> Target:
    """The target with its classes spelt as tokens, to compare with logged values and labels."""
    if not target.classifier:
        return target
    positive = None if target.positive is None else token(target.positive)
    return replace(target, classes=tuple(token(c) for c in target.classes), positive=positive)


def measure(target: Target, predictions: list[Any], labels: list[Any],
            probabilities: list[float | None]) -> dict[str, float]:
    """The Learn phase's metrics on the labeled rows. A binary classifier is scored by its
    probability of the positive class (by its predicted class where the log holds none); a
    multiclass one by its predicted classes (the log holds the probability of that class only)."""
    from valueloop.learn.evaluation import label_metrics, metrics

    if not labels:
        return {}
    if not target.classifier:
        measured = metrics(np.asarray(labels, float), np.asarray(predictions, float), target)
    else:
        tokens = as_tokens(target)
        y = np.array([token(v) for v in labels])
        p = [token(v) for v in predictions]
        if tokens.task == "multiclass":
            measured = label_metrics(y, np.array(p), tokens)
        elif all(q is not None for q in probabilities):
            measured = metrics(y, np.asarray(probabilities, float), tokens)
        else:  # a predicted class as a probability of 0 or 1, decided at any threshold in between
            measured = metrics(y, np.array([v == tokens.positive for v in p], float), tokens)
    return {k: v for k, v in measured.items() if not np.isnan(v)}


def estimate(target: Target, predictions: list[Any], probabilities: list[float | None]) -> dict[str, float]:
    """Before labels, what calibrated probabilities promise: a binary classifier's expected
    accuracy, precision, recall and f1 (each row is right with the probability of its predicted
    class); a multiclass one's expected accuracy (the mean probability of the predicted class)."""
    rows = [(token(p), q) for p, q in zip(predictions, probabilities) if q is not None]
    if not rows or not target.classifier:
        return {}
    prob = np.array([q for _, q in rows], float)
    if target.task == "multiclass":
        return {"accuracy": float(prob.mean())}
    positive = as_tokens(target).positive
    flagged = np.array([p == positive for p, _ in rows])
    expected_tp = float(prob[flagged].sum())
    expected_positives = float(prob.sum())
    right = np.where(flagged, prob, 1 - prob)
    precision = expected_tp / flagged.sum() if flagged.any() else 0.0
    recall = expected_tp / expected_positives if expected_positives > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"accuracy": float(right.mean()), "precision": precision, "recall": recall, "f1": f1,
            "positive_rate": float(prob.mean())}
