"""Train the same estimators two ways on a 1-million-row dataset version, side by side; print
wall times and the ratio.

(a) the floor: a plain script that reads the dataset version's Delta table, cuts the same
stratified split, fits the same scikit-learn pipelines (logistic regression, LightGBM) and
scores them on the test set; (b) valueloop: ``valueloop train`` on the same dataset version,
with MLflow tracking, evaluation (metrics, segments, calibration, plots), model tests and the
registration of the winner. Each runs in its own fresh process, so both pay their imports.
Goal (issue 4): (b) at most 1.2x (a).

    python benchmarks/learn_train.py                  # 1 million rows
    python benchmarks/learn_train.py --rows 100000    # a quick run
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CANDIDATES = [{"name": "logistic", "kind": "logistic", "baseline": True},
              {"name": "lightgbm", "kind": "lightgbm"}]

FLOOR = r'''
import sys
from deltalake import DeltaTable
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

frame = DeltaTable(sys.argv[1]).to_pyarrow_table().to_pandas()
numeric = ["birth_date", "tenure_months", "monthly_charges", "support_calls", "total_charges"]
categorical = ["postcode", "contract", "payment_method"]
X, y = frame[categorical + numeric], frame["churned"]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42, stratify=y)
for name, estimator in [("logistic", LogisticRegression(max_iter=1000, random_state=42)),
                        ("lightgbm", LGBMClassifier(n_estimators=200, verbose=-1, random_state=42,
                                                   force_row_wise=True, deterministic=True))]:
    prep = ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                      OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=50)),
         categorical)])
    model = Pipeline([("preprocess", prep), ("model", estimator)]).fit(X_train, y_train)
    print(name, "roc_auc", round(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]), 4))
'''


def _setup(home: Path, rows: int) -> tuple[dict[str, str], str]:
    """A home with the approved churn use case and one dataset version of ``rows`` customers
    (not timed: this is the Outcomes and Data phases' work)."""
    from rich.console import Console

    from valueloop.config import load_settings
    from valueloop.data import get_version, ingest
    from valueloop.demo import DemoContext
    from valueloop.demo import outcomes as chapter
    from valueloop.examples import load_generator
    from valueloop.learn import tracking
    from valueloop.outcomes.spec import parse_spec
    from valueloop.outcomes.usecases import get_usecase, update_usecase
    from valueloop.store import session

    env = {"VALUELOOP_HOME": str(home)}
    settings = load_settings(env)
    workspace = home / "workspace"
    workspace.mkdir(parents=True)
    ctx = DemoContext(settings=settings, workspace=workspace, console=Console(file=io.StringIO()))
    chapter.run(ctx)
    project = ctx.state["project"]
    load_generator("churn").write(project / "data", rows, 7)
    with session(settings) as s:
        data = get_usecase(s, "churn").spec
        data["model"]["candidates"] = CANDIDATES
        update_usecase(s, "ana", parse_spec(data))
    with session(settings) as s:
        version = ingest(s, settings, "dave", "churn", project_dir=project).version
    with session(settings) as s:
        uri = get_version(s, "churn", version).uri
    tracking.experiment(settings, "churn")  # MLflow creates its database once, at installation
    return env, uri


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=os.environ | env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:3])} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2,
                        help="rounds of (a) then (b); the fastest of each counts (a shared machine is noisy)")
    args = parser.parse_args()

    floors: list[float] = []
    ours: list[float] = []
    with tempfile.TemporaryDirectory(prefix="valueloop-bench-learn-") as tmp:
        started = time.perf_counter()
        env, uri = _setup(Path(tmp) / "home", args.rows)
        print(f"setup (use case, {args.rows:,} rows ingested as a dataset version): "
              f"{time.perf_counter() - started:.1f} s")
        _timed([sys.executable, "-c", "from deltalake import DeltaTable; import sys; "
                "DeltaTable(sys.argv[1]).to_pyarrow_table()", uri], env)  # warm the page cache
        for round_ in range(1, args.repeat + 1):
            seconds, floor_out = _timed([sys.executable, "-c", FLOOR, uri], env)
            floors.append(seconds)
            print(f"round {round_} (a) plain script, fit + score: {seconds:7.1f} s   "
                  + "; ".join(line.strip() for line in floor_out.splitlines()), flush=True)
            seconds, ours_out = _timed([sys.executable, "-m", "valueloop", "--as", "dana", "train",
                                        "churn", "--json"], env)
            ours.append(seconds)
            report = json.loads(ours_out)
            print(f"round {round_} (b) valueloop train:          {seconds:7.1f} s   "
                  + "; ".join(f"{r['candidate']} roc_auc {r['primary']:.4f} ({r['seconds']:.1f} s)"
                              for r in report["results"])
                  + f"; tracked, evaluated, tested, registered v{report['registered']['version']}", flush=True)

    print(f"fastest (a) {min(floors):.1f} s, fastest (b) {min(ours):.1f} s")
    print(f"ratio valueloop / plain script: {min(ours) / min(floors):.2f}x (goal <= 1.2x)")


if __name__ == "__main__":
    main()
