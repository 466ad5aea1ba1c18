"""Candidates: each kind becomes one scikit-learn Pipeline (preprocessing + estimator), so the
whole is one artifact; a custom candidate is the user's ``train(data, params) -> estimator``,
from a module the setting ``hook_modules`` allows (see ``valueloop.hooks``)."""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valueloop import hooks
from valueloop.errors import InvalidInput
from valueloop.outcomes.spec import Candidate, ModelObjective, ParamRange

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.base import BaseEstimator
    from sklearn.compose import ColumnTransformer

#: Where the kind's estimator lives, per task; missing means the kind does not fit the task.
_ESTIMATORS: dict[str, dict[str, str]] = {
    "logistic": {"classification": "sklearn.linear_model:LogisticRegression"},
    "linear": {"regression": "sklearn.linear_model:LinearRegression"},
    "random_forest": {"classification": "sklearn.ensemble:RandomForestClassifier",
                      "regression": "sklearn.ensemble:RandomForestRegressor"},
    "lightgbm": {"classification": "lightgbm:LGBMClassifier", "regression": "lightgbm:LGBMRegressor"},
    "mlp": {"classification": "sklearn.neural_network:MLPClassifier",
            "regression": "sklearn.neural_network:MLPRegressor"},
}

#: Sensible first settings; the candidate's params override them.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "logistic": {"max_iter": 1000},
    "linear": {},
    "random_forest": {"n_estimators": 100, "n_jobs": -1},
    # LightGBM picks row- or column-wise histograms by timing them: a busy machine would change
    # the model, so the choice is fixed and the run reproducible.
    "lightgbm": {"n_estimators": 200, "verbose": -1, "force_row_wise": True, "deterministic": True},
    "mlp": {"hidden_layer_sizes": [32, 16], "early_stopping": True, "max_iter": 300},
}
_SEEDED = {"logistic", "random_forest", "lightgbm", "mlp"}

#: The search space used when a candidate's ``search.space`` is empty.
DEFAULT_SPACES: dict[str, dict[str, ParamRange]] = {
    "logistic": {"C": ParamRange(low=1e-3, high=100.0, log=True)},
    "random_forest": {"n_estimators": ParamRange(low=50, high=300),
                      "max_depth": ParamRange(low=3, high=20),
                      "min_samples_leaf": ParamRange(low=1, high=20)},
    "lightgbm": {"num_leaves": ParamRange(low=8, high=128, log=True),
                 "learning_rate": ParamRange(low=0.01, high=0.3, log=True),
                 "n_estimators": ParamRange(low=50, high=400),
                 "min_child_samples": ParamRange(low=5, high=100, log=True)},
    "mlp": {"alpha": ParamRange(low=1e-6, high=1e-1, log=True),
            "learning_rate_init": ParamRange(low=1e-4, high=1e-2, log=True)},
}

#: What a use case trains when its file declares no candidates.
DEFAULT_CANDIDATES = {
    "classification": [Candidate(name="logistic", kind="logistic", baseline=True),
                       Candidate(name="lightgbm", kind="lightgbm")],
    "regression": [Candidate(name="linear", kind="linear", baseline=True),
                   Candidate(name="lightgbm", kind="lightgbm")],
}


def declared(objective: ModelObjective, names: list[str] | None = None) -> list[Candidate]:
    """The candidates to train, the baseline first (the others are compared with it)."""
    candidates = objective.candidates or DEFAULT_CANDIDATES[objective.task]
    if names:
        known = {c.name for c in candidates}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InvalidInput(f"candidate: {', '.join(unknown)} not declared; declared: {', '.join(sorted(known))}")
        candidates = [c for c in candidates if c.name in names]
    for i, c in enumerate(candidates):
        if c.kind != "custom" and objective.task not in _ESTIMATORS[c.kind]:
            fits = "linear" if c.kind == "logistic" else "logistic"
            raise InvalidInput(f"model.candidates[{i}].kind: {c.kind} does not fit task {objective.task}; "
                               f"use {fits}")
        if c.search is not None and c.kind != "custom" and not c.search.space and c.kind not in DEFAULT_SPACES:
            raise InvalidInput(f"model.candidates[{i}].search.space: {c.kind} has no default search "
                               "space; declare the parameters to search")
        if c.search is not None and c.kind == "custom" and not c.search.space:
            raise InvalidInput(f"model.candidates[{i}].search.space: a custom candidate's search "
                               "needs its space declared")
    return sorted(candidates, key=lambda c: c is not baseline_of(candidates))


def baseline_of(candidates: list[Candidate]) -> Candidate | None:
    """The declared baseline, else the first linear or logistic candidate."""
    marked = [c for c in candidates if c.baseline]
    linear = [c for c in candidates if c.kind in ("linear", "logistic")]
    return (marked or linear or [None])[0]


def make_preprocessor(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """Impute and scale numbers; impute and one-hot encode categories (rare ones pooled)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("categorical", make_pipeline(
            SimpleImputer(strategy="most_frequent"),
            OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=50),
        ), categorical),
    ])


def _estimator(dotted: str) -> Callable[..., Any]:
    module_name, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _custom(candidate: Candidate, hook_modules: tuple[str, ...]) -> tuple[Callable[..., Any], Path | None]:
    """A custom candidate's training function and its module's file, from an allowed module."""
    return hooks.resolve(candidate.function or "", f"candidate '{candidate.name}' function", hook_modules)


def custom_source(candidate: Candidate, hook_modules: tuple[str, ...]) -> str | None:
    """The file of a custom candidate's module, shipped with the model so it loads anywhere."""
    path = _custom(candidate, hook_modules)[1]
    return str(path) if path else None


class Preprocessing:
    """The preprocessing of every built-in kind (:func:`make_preprocessor`), fitted once per set of
    rows and copied into each pipeline that fits on them. It learns from the features alone, so
    the candidates of a training (and the trials of a search) would each fit the same transformer
    on the same rows to the same state: at a million rows, a third of LightGBM's fit. The rows
    are known by identity, kept with their fit so that no other frame takes their id."""

    def __init__(self, numeric: list[str], categorical: list[str]) -> None:
        self.numeric, self.categorical = numeric, categorical
        self._fitted: dict[int, tuple[pd.DataFrame, ColumnTransformer, Any]] = {}

    def fit_transform(self, X: pd.DataFrame, y: pd.Series) -> tuple[ColumnTransformer, Any]:
        """A fitted copy of the transformer for these rows, and the rows it transformed (the
        estimator's input, as ``Pipeline.fit`` passes it on)."""
        if id(X) not in self._fitted:
            transformer = make_preprocessor(self.numeric, self.categorical)
            self._fitted[id(X)] = (X, transformer, transformer.fit_transform(X, y))
        _, transformer, transformed = self._fitted[id(X)]
        return copy.deepcopy(transformer), transformed


def fit(candidate: Candidate, params: dict[str, Any], task: str, seed: int, preprocessing: Preprocessing,
        X: pd.DataFrame, y: pd.Series, *, hook_modules: tuple[str, ...] = ()) -> BaseEstimator:
    """Fit one candidate with these params: the pipeline of the shared preprocessing's copy and
    the estimator fitted on what it made of ``X``, as ``Pipeline.fit`` would fit both. A custom
    one gets the training frame with its target, if the setting ``hook_modules`` allows its module."""
    if candidate.kind == "custom":
        train = _custom(candidate, hook_modules)[0]
        data = X.assign(**{str(y.name): y.to_numpy()})
        return train(data, dict(params))
    from sklearn.pipeline import Pipeline

    estimator_class = _estimator(_ESTIMATORS[candidate.kind][task])
    settings = _DEFAULTS[candidate.kind] | ({"random_state": seed} if candidate.kind in _SEEDED else {})
    settings |= params
    if "hidden_layer_sizes" in settings:
        settings["hidden_layer_sizes"] = tuple(settings["hidden_layer_sizes"])
    transformer, transformed = preprocessing.fit_transform(X, y)
    estimator = estimator_class(**settings).fit(transformed, y)
    return Pipeline([("preprocess", transformer), ("model", estimator)])
