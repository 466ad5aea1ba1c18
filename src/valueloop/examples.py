"""Where the bundled examples are: beside the package in a wheel, at the repository root in a checkout."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from valueloop.errors import NotFound

_PACKAGED = Path(__file__).parent / "_examples"
_CHECKOUT = Path(__file__).resolve().parents[2] / "examples"


def example_dir(name: str) -> Path:
    root = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT
    path = root / name
    if not path.is_dir():
        raise NotFound(f"example '{name}' is not bundled (looked in {root})")
    return path


def load_generator(name: str) -> ModuleType:
    """The example's data generator module (its ``generate.py``)."""
    path = example_dir(name) / "generate.py"
    spec = importlib.util.spec_from_file_location(f"valueloop_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: The model section of the minimal use case file, per task (``valueloop init --task``).
_MODELS = {
    "binary": """\
model:                          # what to predict, and when a model is good enough
  task: classification          # binary: the target holds two classes
  target: label                 # the column to predict
  positive_class: 1             # the class recall, precision and f1 are about
  primary_metric: roc_auc       # roc_auc, pr_auc, accuracy, f1, precision, recall or log_loss
  threshold: 0.7                # a model is accepted when it reaches this on the test set
  decision_threshold: {kpi: recall}   # or a number: the probability from which a row is positive
""",
    "multiclass": """\
model:                          # what to predict, and when a model is good enough
  task: classification          # multiclass: the target holds three classes or more
  target: label                 # the column to predict
  primary_metric: accuracy      # accuracy, f1, precision, recall (macro), roc_auc or log_loss
  threshold: 0.7                # a model is accepted when it reaches this on the test set
""",
    "regression": """\
model:                          # what to predict, and when a model is good enough
  task: regression              # the target is a number
  target: label                 # the column to predict
  primary_metric: rmse          # rmse, mae, r2 or mape
  threshold: 10.0               # a model is accepted when it reaches this on the test set
""",
}

#: The model KPI of each task's template.
_KPIS = {
    "binary": "  - {name: recall, kind: model, metric: recall, comparator: \">=\", target: 0.7}  "
              "# chooses the decision threshold\n",
    "multiclass": "  - {name: accuracy, kind: model, metric: accuracy, comparator: \">=\", target: 0.7}  "
                  "# judged on held-out rows\n",
    "regression": "  - {name: error, kind: model, metric: mae, comparator: \"<=\", target: 10.0}  "
                  "# judged on held-out rows\n",
}

TASKS = tuple(_MODELS)


def template(task: str) -> str:
    """A minimal use case file for one task, every field commented; the churn example shows the rest."""
    return f"""\
# A minimal valueloop use case file ({task}); `valueloop init` writes the full, commented churn example.
name: my-usecase                # lowercase letters, digits, '-' and '_': used in commands and URLs
title: What the model predicts  # one line for people
business_goal: >-               # the outcome the owner wants, and why it matters
  Say what should change in the business when the model is used.
owner: owner                    # a valueloop user: accepts models and decides each review
members:                        # everyone else by role, each a valueloop user
  data_engineer: [engineer]     # ingests and checks the data
  data_scientist: [scientist]   # trains and tests the models
  developer: [developer]        # serves the model
  operations: [operator]        # runs and monitors production
kpis:                           # measurable targets: business (your systems) or model (held-out data)
{_KPIS[task]}sources:                        # where the data comes from: csv, parquet, sql or delta
  - {{name: rows, kind: csv, path: data/rows.csv}}   # one source needs no transform
privacy:                        # the DPIA the privacy officer decides on
  description: What data is processed, about whom.   # in plain words
  purpose: Why it is processed.                       # the one purpose the data serves
  necessity: Why no less data would do.               # necessity and proportionality
  columns: []                   # personal columns and their treatment: drop, pseudonymize, generalize
{_MODELS[task]}"""
