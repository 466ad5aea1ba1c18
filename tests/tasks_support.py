"""The churn use case turned into each common task on data the tests make: the CRM export's
``churned`` column holds "left"/"stayed" (binary, positive class "left"), one of three classes
(multiclass), or a number (regression); the features stay the churn example's."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from deploy_support import UNTIMED
from outcomes.support import update_as_team

from valueloop.config import Settings
from valueloop.examples import load_generator
from valueloop.outcomes.usecases import get_usecase
from valueloop.store import session

CLASSIFIERS = [{"name": "logistic", "kind": "logistic", "baseline": True},
               {"name": "lightgbm", "kind": "lightgbm", "params": {"n_estimators": 40}}]
REGRESSORS = [{"name": "linear", "kind": "linear", "baseline": True},
              {"name": "lightgbm", "kind": "lightgbm", "params": {"n_estimators": 40}}]

#: per task: the model section's changes and the model KPIs
MODELS: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
    "binary": ({"task": "classification", "positive_class": "left", "decision_threshold": {"kpi": "recall"},
                "primary_metric": "roc_auc", "threshold": 0.6, "candidates": CLASSIFIERS},
               [{"name": "recall", "kind": "model", "metric": "recall", "comparator": ">=", "target": 0.7}]),
    "multiclass": ({"task": "classification", "primary_metric": "accuracy", "threshold": 0.5,
                    "candidates": CLASSIFIERS},
                   [{"name": "accuracy", "kind": "model", "metric": "accuracy", "comparator": ">=", "target": 0.5}]),
    "regression": ({"task": "regression", "primary_metric": "rmse", "threshold": 40.0,
                    "split": {"kind": "random", "test_size": 0.2, "seed": 42}, "candidates": REGRESSORS},
                   [{"name": "error", "kind": "model", "metric": "mae", "comparator": "<", "target": 30.0}]),
}


def label(table: pa.Table, task: str) -> pa.Table:
    """The export with its ``churned`` column holding the task's target."""
    churned = np.asarray(table["churned"].to_pylist(), bool)
    tenure = np.asarray(table["tenure_months"].to_pylist())
    if task == "binary":
        target = pa.array(np.where(churned, "left", "stayed"))
    elif task == "multiclass":
        target = pa.array(np.where(churned, "left", np.where(tenure >= 36, "loyal", "new")))
    else:
        calls = np.asarray(table["support_calls"].to_pylist())
        noise = np.random.default_rng(len(tenure)).normal(0, 5, len(tenure))
        target = pa.array(np.round(2.0 * tenure + 8.0 * calls + 20.0 * churned + noise, 2))
    return table.set_column(table.schema.get_field_index("churned"), "churned", target)


def write_export(project: Path, task: str, rows: int, seed: int, period: int = 0) -> pa.Table:
    """The CRM export the next ingest reads, labelled for the task; returns it."""
    table = label(load_generator("churn").generate(rows, seed, period), task)
    (project / "data").mkdir(exist_ok=True)
    pacsv.write_csv(table, project / "data" / "customers.csv")
    return table


def make_task(settings: Settings, task: str, project: Path, rows: int = 1500,
              operate: dict[str, Any] | None = None) -> None:
    """Turn the approved churn use case into ``task`` (with this operate section) and ingest its
    first dataset version."""
    from valueloop.data import ingest

    with session(settings) as s:
        data = copy.deepcopy(get_usecase(s, "churn").spec)
    data["operate"] = operate
    model, kpis = MODELS[task]
    data["kpis"] = [k for k in data["kpis"] if k["kind"] == "business"] + kpis
    data["data"]["checks"] = [c for c in data["data"]["checks"] if c.get("column") != "churned"]
    data["model"] = data["model"] | model | {
        # the example's per-feature tests hold for its churn probability, not for every task's output
        "segments": [], "tests": data["model"]["tests"] | UNTIMED | {"invariance": [], "directional": [],
                                                                     "segment_floors": []}}
    update_as_team(settings, data)
    write_export(project, task, rows, seed=7)
    with session(settings) as s:
        ingest(s, settings, "dave", "churn", project_dir=project)
