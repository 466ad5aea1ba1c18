"""Evaluation on the held-out test set: every metric of the task, per segment, calibration, and
the plots people compare (drawn on a subsample: a picture needs no million points)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import cache
from typing import TYPE_CHECKING, Any

from valueloop.outcomes.spec import LOWER_IS_BETTER

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from valueloop.learn.dataset import Target

PLOT_ROWS = 20_000
#: permutation importance: a seeded sample of the test set, each column shuffled this many times
IMPORTANCE_ROWS = 2_000
IMPORTANCE_REPEATS = 3
#: at most this many shuffled rows are stacked into one prediction
IMPORTANCE_BATCH_ROWS = 100_000
#: candidate decision thresholds tried on the validation rows: quantiles of their scores
THRESHOLD_STEPS = 200


def scores(model: Any, X: pd.DataFrame, target: Target) -> np.ndarray:
    """What the model says per row: the positive class's probability (binary), every class's
    probability in ``target.classes`` order (multiclass), or the predicted number."""
    import numpy as np

    if not target.classifier:
        return np.asarray(model.predict(X), dtype=float)
    proba = np.asarray(model.predict_proba(X), dtype=float)
    order = [list(model.classes_).index(c) for c in target.classes]
    proba = proba[:, order]
    return proba[:, target.classes.index(target.positive)] if target.task == "binary" else proba


def decide(score: np.ndarray, target: Target) -> np.ndarray:
    """The predicted class of each row from its scores."""
    import numpy as np

    return np.asarray(target.classes, dtype=object)[_decided(score, target)]


def _decided(score: np.ndarray, target: Target) -> np.ndarray:
    """The position in ``target.classes`` of each row's predicted class."""
    import numpy as np

    if target.task == "binary":
        positive = target.classes.index(target.positive)
        return np.where(score >= target.threshold, positive, 1 - positive)
    return np.argmax(score, axis=1)


def _codes(values: np.ndarray, target: Target) -> np.ndarray:
    """The position in ``target.classes`` of each value (-1 for one that is none of them). The
    metrics count these integers: scikit-learn's checks of an array of Python objects (np.unique
    over them, once per metric) cost more than the metrics themselves."""
    import pandas as pd

    return pd.Categorical(values, categories=list(target.classes)).codes.astype("intp")


def better(metric: str, value: float, than: float) -> bool:
    return value < than if metric in LOWER_IS_BETTER else value > than


def at_least_as_good(metric: str, value: float, than: float) -> bool:
    return value <= than if metric in LOWER_IS_BETTER else value >= than


def label_metrics(y: np.ndarray, label: np.ndarray, target: Target) -> dict[str, float]:
    """The metrics of predicted classes: of the positive class (binary), else macro-averaged."""
    return _label_metrics(_codes(y, target), _codes(label, target), target)


def _label_metrics(y: np.ndarray, label: np.ndarray, target: Target) -> dict[str, float]:
    """:func:`label_metrics` of the classes' positions (:func:`_codes`)."""
    from sklearn import metrics as m

    how: dict[str, Any] = {"pos_label": target.classes.index(target.positive), "average": "binary"} \
        if target.task == "binary" else {"labels": list(range(len(target.classes))), "average": "macro"}
    precision, recall, f1, _ = m.precision_recall_fscore_support(y, label, zero_division=0, **how)
    return {"accuracy": float(m.accuracy_score(y, label)), "precision": float(precision),
            "recall": float(recall), "f1": float(f1)}


def _metric_functions(y: np.ndarray, score: np.ndarray, target: Target) -> dict[str, Callable[[], float]]:
    """Each metric of the task as a function of no arguments, so one is computed without the
    others; what several share (the predicted classes, the 0/1 truth) is computed once."""
    import numpy as np
    from sklearn import metrics as m

    if not target.classifier:
        return {
            "rmse": lambda: m.root_mean_squared_error(y, score),
            "mae": lambda: m.mean_absolute_error(y, score),
            "r2": lambda: m.r2_score(y, score),
            "mape": lambda: m.mean_absolute_percentage_error(y, score),
        }
    nan = float("nan")
    codes = cache(lambda: _codes(y, target))
    labelled = cache(lambda: _label_metrics(codes(), _decided(score, target), target))
    functions: dict[str, Callable[[], float]] = {
        name: (lambda name=name: labelled()[name]) for name in ("accuracy", "precision", "recall", "f1")}
    if target.task == "binary":
        truth = cache(lambda: (codes() == target.classes.index(target.positive)).astype(int))
        both = cache(lambda: np.unique(truth()).size == 2)
        return functions | {
            "roc_auc": lambda: m.roc_auc_score(truth(), score) if both() else nan,
            "pr_auc": lambda: m.average_precision_score(truth(), score) if both() else nan,
            "log_loss": lambda: m.log_loss(truth(), score, labels=[0, 1]),
            "brier": lambda: m.brier_score_loss(truth(), score),
        }
    onehot = cache(lambda: (codes()[:, None] == np.arange(len(target.classes))).astype(int))
    every = cache(lambda: bool(onehot().any(axis=0).all()))
    return functions | {
        "roc_auc": lambda: m.roc_auc_score(onehot(), score, average="macro") if every() else nan,
        "pr_auc": lambda: m.average_precision_score(onehot(), score, average="macro") if every() else nan,
        "log_loss": lambda: m.log_loss(onehot(), score / score.sum(axis=1, keepdims=True)),
    }


def metrics(y: np.ndarray, score: np.ndarray, target: Target) -> dict[str, float]:
    """Every metric of the task; one that is undefined here (one class only) is NaN."""
    return {name: float(compute()) for name, compute in _metric_functions(y, score, target).items()}


def single_metric(name: str, y: np.ndarray, score: np.ndarray, target: Target) -> float:
    """One metric of :func:`metrics`, alone: a search trial or a permutation asks for one."""
    return float(_metric_functions(y, score, target)[name]())


def choose_threshold(y: np.ndarray, score: np.ndarray, target: Target, kpi: Any) -> tuple[float, float]:
    """The binary decision threshold that meets ``kpi`` on these (validation) rows with the best f1;
    if none meets it, the one that comes closest. Returns (threshold, the KPI's metric there)."""
    import numpy as np

    tried = np.unique(np.quantile(score, np.linspace(0, 1, THRESHOLD_STEPS + 1)))
    truth = _codes(y, target)
    best: tuple[bool, float, float, float] | None = None
    for threshold in tried:
        at = _label_metrics(truth, _decided(score, replace(target, threshold=float(threshold))), target)
        value = at[kpi.metric]
        met = kpi.met_by(value)
        rank = (met, at["f1"] if met else (value if kpi.comparator.value in (">", ">=") else -value))
        if best is None or rank > best[:2]:
            best = (*rank, float(threshold), value)
    assert best is not None
    return best[2], best[3]


def segments(frame: pd.DataFrame, columns: list[str], y: np.ndarray, score: np.ndarray, target: Target,
             top: int = 20) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per value of each segment column (the ``top`` commonest values, the rest pooled)."""
    import pandas as pd

    result: dict[str, dict[str, dict[str, float]]] = {}
    for column in columns:
        text = frame[column].astype("string").fillna("(missing)")
        grouped = pd.Categorical(text.where(text.isin(text.value_counts().index[:top]), "(other)"))
        per: dict[str, dict[str, float]] = {}
        for code, value in sorted(enumerate(grouped.categories), key=lambda kv: kv[1]):
            rows = grouped.codes == code
            per[value] = {"rows": float(rows.sum())} | metrics(y[rows], score[rows], target)
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


def sample_rows(rows: int, size: int, seed: int) -> np.ndarray:
    """The positions of the seeded sample of ``size`` of ``rows`` rows that
    ``DataFrame.sample(size, random_state=seed)`` takes (all of them if fewer)."""
    import pandas as pd

    return pd.RangeIndex(rows).to_series().sample(min(rows, size), random_state=seed).to_numpy()


def importance(model: Any, X: pd.DataFrame, y: pd.Series, score: np.ndarray, metric: str, target: Target,
               seed: int) -> dict[str, float]:
    """Permutation importance of each input column on a seeded sample of ``IMPORTANCE_ROWS`` test
    rows, ``IMPORTANCE_REPEATS`` shuffles each: one method for every kind, scored by the same metric
    as evaluation (so of the positive class, at the threshold). ``score`` is the evaluation's, of
    every row of ``X``.

    The numbers are scikit-learn's ``permutation_importance`` (the same shuffles of the same
    sample), but the shuffled copies are predicted stacked, a batch at a time, and the unshuffled
    sample's score is taken from ``score``: one model call per column and repeat cost more than the
    predictions themselves (a pipeline's checks and transforms, per call)."""
    import numpy as np
    import pandas as pd

    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    at = sample_rows(len(X), IMPORTANCE_ROWS, seed)
    sample, truth, n = X.iloc[at], y.to_numpy()[at], len(at)
    baseline = sign * single_metric(metric, truth, score[at], target)
    shuffles, state = [], np.random.RandomState(np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1))
    order, shuffled = np.arange(n), np.arange(n)
    for _ in range(IMPORTANCE_REPEATS):  # each repeat shuffles the column as the one before left it
        state.shuffle(order)
        shuffled = shuffled[order]
        shuffles.append(shuffled)
    columns, dropped = list(X.columns), {}
    per_batch = max(1, IMPORTANCE_BATCH_ROWS // (n * IMPORTANCE_REPEATS))
    for first in range(0, len(columns), per_batch):
        batch = columns[first:first + per_batch]
        stacked = pd.DataFrame({c: sample[c].array.take(np.concatenate(
            [s if c == b else np.arange(n) for b in batch for s in shuffles])) for c in columns})
        blocks = np.split(scores(model, stacked, target), len(batch) * IMPORTANCE_REPEATS)
        for i, column in enumerate(batch):
            permuted = [sign * single_metric(metric, truth, block, target)
                        for block in blocks[i * IMPORTANCE_REPEATS:(i + 1) * IMPORTANCE_REPEATS]]
            dropped[column] = float(np.mean(baseline - np.array(permuted)))
    return dict(sorted(dropped.items(), key=lambda kv: -kv[1]))


def plot_rows(y: np.ndarray, score: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows the figures draw: a sample of ``PLOT_ROWS`` (and all that is sent to draw them)."""
    import numpy as np

    if len(y) <= PLOT_ROWS:
        return y, score
    rows = np.random.default_rng(seed).choice(len(y), PLOT_ROWS, replace=False)
    return y[rows], score[rows]


def prepare_drawing() -> None:
    """The drawing process's first job (learn/rendering.py): the imports :func:`draw` needs and a
    first figure saved (its fonts loaded), seconds that are then spent while training reads its
    data rather than when the first candidate's figures are due."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from sklearn import metrics  # noqa: F401
    from sklearn.calibration import CalibrationDisplay  # noqa: F401

    ax = _figure({}, "warm.png")
    ax.set_xlabel("warm")
    ax.figure.savefig(io.BytesIO(), format="png")


def _figure(figures: dict[str, Any], name: str) -> Any:
    """A new figure's axes, the figure kept under its file name."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4), layout="constrained")
    figures[name] = fig
    return fig.add_subplot()


def _save(folder: str, figures: dict[str, Any]) -> list[str]:
    for name, fig in figures.items():
        fig.savefig(f"{folder}/{name}")
    return list(figures)


def draw(folder: str, y: np.ndarray, score: np.ndarray, target: Target) -> list[str]:
    """Save the evaluation curves of these rows (:func:`plot_rows`) as PNG files in ``folder``;
    returns their file names (run in the drawing process, learn/rendering.py)."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from sklearn import metrics as m
    from sklearn.calibration import CalibrationDisplay

    figures: dict[str, Any] = {}
    if target.classifier:
        names = [str(c) for c in target.classes]
        m.ConfusionMatrixDisplay.from_predictions([str(v) for v in y], [str(v) for v in decide(score, target)],
                                                  labels=names, ax=_figure(figures, "confusion_matrix.png"),
                                                  colorbar=False)
    if target.task == "binary":
        truth = np.array([v == target.positive for v in y], int)
        m.RocCurveDisplay.from_predictions(truth, score, ax=_figure(figures, "roc.png"))
        m.PrecisionRecallDisplay.from_predictions(truth, score, ax=_figure(figures, "precision_recall.png"))
        CalibrationDisplay.from_predictions(truth, score, n_bins=10, strategy="quantile",
                                            ax=_figure(figures, "calibration.png"))
    elif not target.classifier:
        for kind, name in (("residual_vs_predicted", "residuals.png"), ("actual_vs_predicted", "actual_vs_predicted.png")):
            m.PredictionErrorDisplay.from_predictions(y, score, kind=kind, ax=_figure(figures, name),
                                                      subsample=None)
    return _save(folder, figures)


def draw_importance(folder: str, ranking: dict[str, float]) -> list[str]:
    """Save the chart of the permutation importance (the 20 first) in ``folder``."""
    figures: dict[str, Any] = {}
    ax = _figure(figures, "feature_importance.png")
    names = list(ranking)[:20][::-1]
    ax.barh(names, [ranking[n] for n in names])
    ax.set_xlabel("drop of the metric when shuffled")
    return _save(folder, figures)


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
