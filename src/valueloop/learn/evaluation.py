"""Evaluation on the held-out test set: every metric of the task, per segment, calibration, and
the plots people compare (drawn on a subsample: a picture needs no million points)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from valueloop.outcomes.spec import LOWER_IS_BETTER

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure

PLOT_ROWS = 20_000
IMPORTANCE_ROWS = 2_000
THRESHOLD = 0.5  # the decision threshold behind accuracy, precision, recall, f1


def scores(model: Any, X: pd.DataFrame, task: str) -> np.ndarray:
    """What the model says per row: the positive class's probability, or the predicted number."""
    import numpy as np

    if task == "classification":
        return np.asarray(model.predict_proba(X))[:, 1]
    return np.asarray(model.predict(X), dtype=float)


def better(metric: str, value: float, than: float) -> bool:
    return value < than if metric in LOWER_IS_BETTER else value > than


def at_least_as_good(metric: str, value: float, than: float) -> bool:
    return value <= than if metric in LOWER_IS_BETTER else value >= than


def metrics(y: np.ndarray, score: np.ndarray, task: str) -> dict[str, float]:
    """Every metric of the task; one that is undefined here (one class only) is NaN."""
    from sklearn import metrics as m

    if task == "regression":
        return {
            "rmse": float(m.root_mean_squared_error(y, score)),
            "mae": float(m.mean_absolute_error(y, score)),
            "r2": float(m.r2_score(y, score)),
            "mape": float(m.mean_absolute_percentage_error(y, score)),
        }
    import numpy as np

    label = score >= THRESHOLD
    both = np.unique(y).size == 2
    nan = float("nan")
    return {
        "roc_auc": float(m.roc_auc_score(y, score)) if both else nan,
        "pr_auc": float(m.average_precision_score(y, score)) if both else nan,
        "log_loss": float(m.log_loss(y, score, labels=[0, 1])),
        "accuracy": float(m.accuracy_score(y, label)),
        "precision": float(m.precision_score(y, label, zero_division=0)),
        "recall": float(m.recall_score(y, label, zero_division=0)),
        "f1": float(m.f1_score(y, label, zero_division=0)),
        "brier": float(m.brier_score_loss(y, score)),
    }


def segments(frame: pd.DataFrame, columns: list[str], y: np.ndarray, score: np.ndarray, task: str,
             top: int = 20) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per value of each segment column (the ``top`` commonest values, the rest pooled)."""
    import numpy as np

    result: dict[str, dict[str, dict[str, float]]] = {}
    for column in columns:
        values = frame[column].astype("string").fillna("(missing)").to_numpy()
        common = frame[column].astype("string").fillna("(missing)").value_counts().index[:top]
        values = np.where(np.isin(values, common), values, "(other)")
        per: dict[str, dict[str, float]] = {}
        for value in sorted(set(values.tolist())):
            rows = values == value
            per[value] = {"rows": float(rows.sum())} | metrics(y[rows], score[rows], task)
        result[column] = per
    return result


def calibration(y: np.ndarray, score: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Reliability bins and the expected calibration error: does 0.3 mean 30 %?"""
    import numpy as np

    edges = np.quantile(score, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    predicted = np.bincount(which, weights=score, minlength=bins)
    observed = np.bincount(which, weights=y.astype(float), minlength=bins)
    filled = counts > 0
    mean_pred, frac_pos = predicted[filled] / counts[filled], observed[filled] / counts[filled]
    ece = float(np.sum(np.abs(mean_pred - frac_pos) * counts[filled]) / counts.sum())
    return {"ece": ece, "bins": [[float(p), float(o), int(c)]
                                 for p, o, c in zip(mean_pred, frac_pos, counts[filled])]}


_SCORERS = {"roc_auc": "roc_auc", "pr_auc": "average_precision", "log_loss": "neg_log_loss",
            "accuracy": "accuracy", "precision": "precision", "recall": "recall", "f1": "f1",
            "rmse": "neg_root_mean_squared_error", "mae": "neg_mean_absolute_error", "r2": "r2",
            "mape": "neg_mean_absolute_percentage_error"}


def importance(model: Any, X: pd.DataFrame, y: pd.Series, metric: str, seed: int) -> dict[str, float]:
    """Permutation importance of each input column on a subsample: one method for every kind."""
    from sklearn.inspection import permutation_importance

    sample = X.sample(min(len(X), IMPORTANCE_ROWS), random_state=seed)
    result = permutation_importance(model, sample, y.loc[sample.index], scoring=_SCORERS[metric],
                                    n_repeats=3, random_state=seed)
    return dict(sorted(((c, float(v)) for c, v in zip(X.columns, result.importances_mean)),
                       key=lambda kv: -kv[1]))


def plots(y: np.ndarray, score: np.ndarray, task: str, ranking: dict[str, float], seed: int) -> dict[str, Figure]:
    """The evaluation figures, by artifact file name."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure
    from sklearn import metrics as m
    from sklearn.calibration import CalibrationDisplay

    if len(y) > PLOT_ROWS:
        rows = np.random.default_rng(seed).choice(len(y), PLOT_ROWS, replace=False)
        y, score = y[rows], score[rows]
    figures: dict[str, Figure] = {}

    def figure(name: str) -> Any:
        fig = Figure(figsize=(5, 4), layout="constrained")
        figures[name] = fig
        return fig.add_subplot()

    if task == "classification":
        m.RocCurveDisplay.from_predictions(y, score, ax=figure("roc.png"))
        m.PrecisionRecallDisplay.from_predictions(y, score, ax=figure("precision_recall.png"))
        m.ConfusionMatrixDisplay.from_predictions(y, (score >= THRESHOLD).astype(int),
                                                  ax=figure("confusion_matrix.png"), colorbar=False)
        CalibrationDisplay.from_predictions(y, score, n_bins=10, strategy="quantile",
                                            ax=figure("calibration.png"))
    else:
        for kind, name in (("residual_vs_predicted", "residuals.png"), ("actual_vs_predicted", "actual_vs_predicted.png")):
            m.PredictionErrorDisplay.from_predictions(y, score, kind=kind, ax=figure(name),
                                                      subsample=None)
    ax = figure("feature_importance.png")
    names = list(ranking)[:20][::-1]
    ax.barh(names, [ranking[n] for n in names])
    ax.set_xlabel("drop of the metric when shuffled")
    return figures


def comparison_plot(results: dict[str, tuple[float, bool]], metric: str, threshold: float,
                    path: str) -> None:
    """Each candidate's primary metric (green: passed its tests) against the use case's threshold."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 1 + 0.5 * max(len(results), 1)), layout="constrained")
    ax = fig.add_subplot()
    names = list(results)[::-1]
    values = [results[n][0] for n in names]
    bars = ax.barh(names, values, color=["tab:green" if results[n][1] else "tab:red" for n in names])
    ax.bar_label(bars, fmt="%.4f", padding=3)
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:g}")
    low, high = min([*values, threshold]), max([*values, threshold])
    ax.set_xlim(max(0.0, low - 0.1 * (high - low + 0.1)), high + 0.25 * (high - low + 0.1))
    ax.set_xlabel(f"{metric} on the test set (green: passed its tests)")
    fig.legend(loc="outside upper right")
    fig.savefig(path)
