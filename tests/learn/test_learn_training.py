"""Training: tracked in MLflow with its lineage, evaluated, tested, the winner registered."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from learn_support import FAST, set_model
from valueloop.config import Settings
from valueloop.errors import GateClosed, InvalidInput, PermissionDenied
from valueloop.learn import evaluation, registry, training
from valueloop.learn.tables import ModelVersion, TrainingRun
from valueloop.outcomes import audit, usecases
from valueloop.store import session


def _train(settings: Settings, name: str, **kwargs):  # type: ignore[no-untyped-def]
    with session(settings) as s:
        return training.train(s, settings, "dana", name, **kwargs)


#: what a module of custom candidates starts with: their estimator fitted after the usual preprocessing
_FITTED = (
    "from sklearn.pipeline import make_pipeline\n"
    "from valueloop.learn.candidates import make_preprocessor\n\n"
    "def fitted(estimator, data):\n"
    "    X, y = data.drop(columns=['churned']), data['churned']\n"
    "    numeric = [c for c in X.columns if X[c].dtype.kind in 'if']\n"
    "    prep = make_preprocessor(numeric, [c for c in X.columns if c not in numeric])\n"
    "    return make_pipeline(prep, estimator).fit(X, y)\n\n"
)


def _allowed_module(settings: Settings, folder: Path, monkeypatch: pytest.MonkeyPatch, module: str,
                    source: str) -> Settings:
    """A module of custom candidates, importable and allowed by the operator (hook_modules)."""
    (folder / f"{module}.py").write_text(_FITTED + source)
    monkeypatch.syspath_prepend(str(folder))
    return dataclasses.replace(settings, hook_modules=(module,))


def test_runs_in_mlflow_with_lineage_and_the_winner_loads(settings: Settings, churn) -> None:
    import mlflow
    from mlflow import MlflowClient

    name, _ = churn
    report = _train(settings, name)

    assert [r.candidate for r in report.results] == ["logistic", "lightgbm"]
    assert all(r.status == "finished" for r in report.results)
    assert report.split["test_rows"] == 300 and report.split["seed"] == 42
    assert "customer_id" not in report.features and "email" not in report.features
    assert "churned" not in report.features and "contract" in report.features
    assert Path(report.comparison_plot).stat().st_size > 0

    client = MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id],
                              f"tags.`valueloop.dataset_version` = '{report.dataset_version}'")
    assert {r.info.run_id for r in runs} == {r.run_id for r in report.results}
    logistic = client.get_run(report.results[0].run_id)
    assert logistic.data.tags["valueloop.dpia_version"] == str(report.dpia_version)
    assert logistic.data.tags["valueloop.seed"] == "42"
    assert "valueloop.package.scikit-learn" in logistic.data.tags
    assert logistic.data.metrics["roc_auc"] == pytest.approx(report.results[0].primary)
    artifacts = {a.path for a in client.list_artifacts(logistic.info.run_id, "plots")}
    assert {"plots/roc.png", "plots/precision_recall.png", "plots/confusion_matrix.png",
            "plots/feature_importance.png", "plots/calibration.png"} <= artifacts
    # where the time went: the shared steps in the report, each candidate's in its result and run
    assert {"read", "split", "register"} <= set(report.steps)
    assert {"fit", "evaluate", "importance", "model_tests", "log_model"} <= set(report.results[0].steps)
    assert logistic.data.metrics["valueloop.step_seconds.fit"] == report.results[0].steps["fit"] > 0
    assert experiment.artifact_location.startswith(Path(settings.artifact_root).as_uri())

    registered = report.registered
    assert registered is not None and registered.candidate == report.best
    assert registered.tests_passed and registered.acceptance == "pending"
    mlflow.set_tracking_uri(settings.mlflow_uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{registered.version}")
    with session(settings) as s:
        row = s.query(ModelVersion).one()
        run = s.query(TrainingRun).filter_by(run_id=row.run_id).one()
        assert (row.dataset_version, row.dpia_version) == (run.dataset_version, run.dpia_version) == (report.dataset_version, report.dpia_version)
        loaded = registry.load_model(s, settings, name, registered.version)
        assert [e.action for e in audit.events(s, usecase=name, action="model.")] == ["model.register", "model.train"]
    from valueloop.data import read_version

    with session(settings) as s:
        frame = read_version(s, name, report.dataset_version).to_pandas().head(20)[report.features]
    probabilities = model.predict(frame)
    assert probabilities.shape == (20, 2)
    assert (loaded.predict(frame) == probabilities).all()


def test_crashing_custom_candidate_is_recorded_and_the_others_go_on(
    settings: Settings, churn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    name, _ = churn
    settings = _allowed_module(settings, tmp_path, monkeypatch, "mymodels", (
        "import mlflow\n"
        "from sklearn.tree import DecisionTreeClassifier\n\n"
        "def broken(data, params):\n"
        "    raise RuntimeError('the custom model fell over')\n\n"
        "def tree(data, params):\n"
        "    mlflow.log_metric('custom_rows', len(data))\n"
        "    return fitted(DecisionTreeClassifier(**params), data)\n"))
    set_model(settings, name, threshold=0.6, candidates=[
        FAST[0],
        {"name": "broken", "kind": "custom", "function": "mymodels:broken"},
        {"name": "tree", "kind": "custom", "function": "mymodels:tree",
         "params": {"max_depth": 3, "random_state": 0}},
    ])
    report = _train(settings, name)

    by_name = {r.candidate: r for r in report.results}
    assert by_name["broken"].status == "failed"
    assert "the custom model fell over" in (by_name["broken"].error or "")
    assert by_name["tree"].status == "finished" and by_name["logistic"].status == "finished"
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_uri)
    assert client.get_run(by_name["broken"].run_id).info.status == "FAILED"
    assert client.get_run(by_name["tree"].run_id).data.metrics["custom_rows"] == 1200
    with session(settings) as s:
        runs = {r.candidate: r for r in training.list_runs(s, "olivia", name)}
    assert runs["broken"].status == "failed" and "fell over" in (runs["broken"].error or "")


def test_the_test_set_is_predicted_once_and_importance_names_its_sample(
    settings: Settings, churn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, _ = churn
    settings = _allowed_module(settings, tmp_path, monkeypatch, "counted", (
        "from sklearn.linear_model import LogisticRegression\n\n"
        "class Counting(LogisticRegression):  # a real estimator that counts its predictions\n"
        "    calls = []\n\n"
        "    def predict_proba(self, X):\n"
        "        Counting.calls.append(X.shape[0])\n"
        "        return super().predict_proba(X)\n\n"
        "def counting(data, params):\n"
        "    return fitted(Counting(), data)\n"))
    set_model(settings, name, candidates=[{"name": "counted", "kind": "custom", "function": "counted:counting"}])
    import counted

    counted.Counting.calls.clear()  # imported once: the other database's run counted too
    report = _train(settings, name)

    (result,), test_rows = report.results, report.split["test_rows"]
    assert result.status == "finished", result.error
    with session(settings) as s:
        spec = usecases.get_usecase(s, name).spec["model"]["tests"]
    perturbed = len(spec["invariance"]) + len(spec["directional"])
    # evaluation predicts the test set once (metrics, segments, calibration, figures and importance's
    # unshuffled rows all read it); importance's shuffled copies are one call; then the model
    # tests' sample: unchanged, each perturbation, and once more timed
    assert [n for n in counted.Counting.calls if n >= test_rows] == \
        [test_rows, test_rows * len(report.features) * evaluation.IMPORTANCE_REPEATS] + [test_rows] * (2 + perturbed)

    from mlflow import MlflowClient

    params = MlflowClient(tracking_uri=settings.mlflow_uri).get_run(result.run_id).data.params
    assert params["importance.rows"] == str(test_rows) and params["importance.repeats"] == "3"


def test_a_fit_starts_once_the_figures_before_it_are_drawn(
    settings: Settings, churn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Figures drawn beside a fit take a core from it (LightGBM's two threads on two cores)."""
    import tempfile
    import time

    from valueloop.learn import rendering

    name, _ = churn
    drawn = tmp_path / "tmp"
    drawn.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(drawn))  # where training puts the figures it logs
    settings = _allowed_module(settings, tmp_path, monkeypatch, "watching", (
        "import glob\n"
        "from sklearn.tree import DecisionTreeClassifier\n\n"
        "seen = []\n\n"
        f"def tree(data, params):  # the figures of the candidates before it, as this fit starts\n"
        f"    seen.extend(len(glob.glob(f'{{d}}/*.png')) for d in glob.glob('{drawn}/valueloop-plots-*'))\n"
        "    return fitted(DecisionTreeClassifier(max_depth=3, random_state=0), data)\n"))
    set_model(settings, name, candidates=[FAST[0], {"name": "tree", "kind": "custom", "function": "watching:tree"}])
    rendering.submit(time.sleep, 2)  # the worker busy (with another training's figures, say)
    report = _train(settings, name)

    import watching

    assert [r.status for r in report.results] == ["finished", "finished"]
    assert watching.seen == [5]  # the baseline's five figures, all drawn


def test_nothing_that_fails_its_tests_is_registered(settings: Settings, churn) -> None:
    name, _ = churn
    set_model(settings, name, threshold=0.99, tests={
        "directional": [{"column": "support_calls", "add": 2, "expect": "decrease"}],
        "invariance": [{"column": "tenure_months"}]})  # an input every candidate reads
    report = _train(settings, name)

    assert report.registered is None and report.best is None
    for result in report.results:
        failed = {t.name for t in result.tests if not t.passed}
        assert {"threshold", "directional:support_calls", "invariance:tenure_months"} <= failed
    with session(settings) as s:
        assert registry.list_models(s, "olivia", name) == []


def test_search_trials_are_nested_runs(settings: Settings, churn) -> None:
    import mlflow

    name, _ = churn
    set_model(settings, name, candidates=[FAST[0], {
        "name": "searched", "kind": "lightgbm", "params": {"n_estimators": 30},
        "search": {"n_trials": 3, "space": {"num_leaves": {"low": 4, "high": 16}}}}])
    report = _train(settings, name, candidates=["searched"])

    searched = report.results[1]
    assert [r.candidate for r in report.results] == ["logistic", "searched"]  # the baseline always trains
    assert searched.trials == 3
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_uri)
    parent = client.get_run(searched.run_id)
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{searched.run_id}'")
    assert len(children) == 3
    assert all("validation_roc_auc" in c.data.metrics for c in children)
    assert 4 <= int(parent.data.params["model.num_leaves"]) <= 16


@pytest.mark.parametrize(("changes", "message"), [
    ({"target": "cancelled"}, r"model.target: column 'cancelled' is not in dataset version \d"),
    ({"target": "monthly_charges", "tests": {}},  # a number of many values, not a class (support_calls would be 3+ classes)
     r"model.task: classification does not match target 'monthly_charges': it has \d+ distinct value.s. "
     r"in dataset version \d; classification needs 2 to 100"),
    ({"split": {"test_size": 0.9999}}, "test_size 0.9999 of 1500 row.s. leaves an empty training set"),
    ({"features": {"include": ["tenure_months", "shoe_size"]}, "tests": {}},
     r"model.features.include: column\(s\) shoe_size"),
])
def test_bad_input_is_named_and_nothing_is_trained(settings: Settings, churn, changes, message) -> None:
    name, _ = churn
    set_model(settings, name, **changes)
    with pytest.raises(InvalidInput, match=message):
        _train(settings, name)
    with session(settings) as s:
        assert training.list_runs(s, "dana", name) == []


def test_a_model_kpi_that_does_not_fit_the_task_is_refused(settings: Settings, churn) -> None:
    from valueloop.outcomes.spec import parse_spec
    from valueloop.outcomes.usecases import get_usecase, update_usecase

    name, _ = churn
    with session(settings) as s:
        data = get_usecase(s, name).spec
        data["kpis"].append({"name": "error", "kind": "model", "metric": "rmse", "comparator": "<",
                             "target": 1})
        update_usecase(s, "ana", parse_spec(data))
    with pytest.raises(InvalidInput, match=r"kpis\[4\].metric: 'rmse' does not fit task classification"):
        _train(settings, name)


def test_a_metric_that_does_not_fit_the_task_is_refused_in_the_file(settings: Settings, churn) -> None:
    with pytest.raises(InvalidInput, match="primary_metric 'rmse' does not fit task classification"):
        set_model(settings, churn[0], primary_metric="rmse")


def test_training_needs_the_role_and_an_approved_dpia(settings: Settings, churn) -> None:
    from valueloop.outcomes.spec import parse_spec
    from valueloop.outcomes.usecases import get_usecase, update_usecase

    name, _ = churn
    with pytest.raises(PermissionDenied, match="requires role data_scientist"), session(settings) as s:
        training.train(s, settings, "dave", name)
    with session(settings) as s:
        data = get_usecase(s, name).spec
        data["privacy"]["purpose"] = "something else"
        update_usecase(s, "ana", parse_spec(data))
    with pytest.raises(GateClosed, match="awaits the privacy officer"):
        _train(settings, name)


def test_a_search_whose_every_trial_fails_fails_its_candidate_only(settings: Settings, churn) -> None:
    import mlflow

    name, _ = churn
    set_model(settings, name, candidates=[FAST[0], {
        "name": "bad_search", "kind": "lightgbm",
        "search": {"n_trials": 2, "space": {"num_leaves": {"choices": [-5]}}}}])
    report = _train(settings, name)

    logistic, bad = report.results
    assert logistic.status == "finished" and report.registered is not None
    assert bad.status == "failed" and bad.trials == 0
    assert (bad.error or "").startswith("RuntimeError: every one of 2 search trial(s) failed, the last with")
    run = mlflow.MlflowClient(tracking_uri=settings.mlflow_uri).get_run(bad.run_id)
    assert run.info.status == "FAILED" and "search trial(s) failed" in run.data.tags["valueloop.error"]
