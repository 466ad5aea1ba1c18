"""Model KPIs from labels joined to predictions by request id, and, before labels arrive, an
estimate from the predicted probabilities that assumes they are calibrated."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa


def latest_labels(labels: pa.Table) -> dict[str, Any]:
    """The last label per request id: a later label corrects an earlier one."""
    ids, values = labels["request_id"].to_pylist(), labels["label"].to_pylist()
    return dict(zip(ids, values))


def token(value: Any) -> str:
    """One spelling for a class across the log and the labels (1, 1.0, True and "1" agree)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def positive_class(values: list[str]) -> str:
    classes = sorted(set(values))
    return "1" if "1" in classes else classes[-1]


def measure(task: str, predictions: list[Any], labels: list[Any], probabilities: list[float | None]) -> dict[str, float]:
    """The Learn phase's metrics on the labeled rows; a classifier is scored by its probability of
    the positive class (by its predicted class where the log holds no probability)."""
    from valueloop.learn.evaluation import metrics

    if not labels:
        return {}
    if task == "regression":
        measured = metrics(np.asarray(labels, float), np.asarray(predictions, float), task)
    else:
        y = [token(v) for v in labels]
        p = [token(v) for v in predictions]
        positive = positive_class(y + p)
        truth = np.array([v == positive for v in y], int)
        if all(q is not None for q in probabilities):
            score = np.asarray(probabilities, float)
        else:
            score = np.array([v == positive for v in p], float)
        measured = metrics(truth, score, task)
    return {k: v for k, v in measured.items() if not np.isnan(v)}


def estimate(predictions: list[Any], probabilities: list[float | None]) -> dict[str, float]:
    """Expected accuracy, precision, recall and f1 of a binary classifier whose probability of the
    positive class is calibrated: each row is right with the probability of its predicted class."""
    rows = [(token(p), q) for p, q in zip(predictions, probabilities) if q is not None]
    if not rows:
        return {}
    positive = positive_class([p for p, _ in rows])
    flagged = np.array([p == positive for p, _ in rows])
    prob = np.array([q for _, q in rows], float)
    expected_tp = float(prob[flagged].sum())
    expected_positives = float(prob.sum())
    right = np.where(flagged, prob, 1 - prob)
    precision = expected_tp / flagged.sum() if flagged.any() else 0.0
    recall = expected_tp / expected_positives if expected_positives > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"accuracy": float(right.mean()), "precision": precision, "recall": recall, "f1": f1,
            "positive_rate": float(prob.mean())}
