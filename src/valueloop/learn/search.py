"""Hyperparameter search with Optuna: each trial a nested MLflow run, judged on a validation
part of the training set (the test set stays unseen until the final evaluation)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from valueloop.learn import candidates as kinds
from valueloop.learn.evaluation import scores, single_metric
from valueloop.outcomes.spec import LOWER_IS_BETTER, Candidate, ParamRange

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from rich.progress import Progress

    from valueloop.learn.dataset import Target

VALIDATION_SHARE = 0.2


def _suggest(trial: optuna.Trial, name: str, spec: ParamRange) -> Any:
    if spec.choices is not None:
        return trial.suggest_categorical(name, spec.choices)
    if isinstance(spec.low, int) and isinstance(spec.high, int):
        return trial.suggest_int(name, spec.low, spec.high, log=spec.log)
    return trial.suggest_float(name, float(spec.low), float(spec.high), log=spec.log)  # type: ignore[arg-type]


def validation_cut(X: pd.DataFrame, y: pd.Series, share: float, seed: int,
                   target: Target) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    """Training rows cut into rows to fit and rows to validate on (stratified for a classifier)."""
    from sklearn.model_selection import train_test_split

    fit_rows, val_rows = train_test_split(range(len(X)), test_size=share, random_state=seed,
                                          stratify=y if target.classifier else None)
    return X.iloc[fit_rows], y.iloc[fit_rows], X.iloc[val_rows], y.iloc[val_rows]


def search(candidate: Candidate, target: Target, metric: str, seed: int, preprocessing: kinds.Preprocessing,
           X: pd.DataFrame, y: pd.Series,
           progress: Progress | None, hook_modules: tuple[str, ...]) -> tuple[dict[str, Any], int]:
    """The best params found within the budget (merged over the declared ones) and the trial count."""
    import mlflow
    import optuna

    assert candidate.search is not None
    space = candidate.search.space or kinds.DEFAULT_SPACES[candidate.kind]
    X_fit, y_fit, X_val, y_val = validation_cut(X, y, VALIDATION_SHARE, seed, target)
    budget = candidate.search.n_trials
    task_id = progress.add_task(f"search {candidate.name}", total=budget) if progress else None
    errors: list[str] = []
    experiment_id = mlflow.active_run().info.experiment_id  # type: ignore[union-attr]

    def objective(trial: optuna.Trial) -> float:
        params = candidate.params | {name: _suggest(trial, name, spec) for name, spec in space.items()}
        with mlflow.start_run(experiment_id=experiment_id, nested=True,
                              run_name=f"{candidate.name}-trial-{trial.number}"):
            mlflow.log_params(params)
            try:
                model = kinds.fit(candidate, params, target.family, seed, preprocessing, X_fit, y_fit,
                                  hook_modules=hook_modules)
                value = single_metric(metric, y_val.to_numpy(), scores(model, X_val, target), target)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                raise
            finally:
                if progress is not None and task_id is not None:
                    progress.advance(task_id)
            mlflow.log_metric(f"validation_{metric}", value)
        if math.isnan(value):
            raise optuna.TrialPruned(f"validation {metric} is undefined")
        return value

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        direction="minimize" if metric in LOWER_IS_BETTER else "maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    study.optimize(objective, n_trials=budget, timeout=candidate.search.timeout, catch=(Exception,))
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not finished:
        raise RuntimeError(f"every one of {len(study.trials)} search trial(s) failed"
                           + (f", the last with {errors[-1]}" if errors else ""))
    return candidate.params | study.best_params, len(study.trials)
