"""Training: every declared candidate on a pinned dataset version, tracked in MLflow, evaluated
and tested on the held-out set; the best one that passes is registered. And reproduction."""

from __future__ import annotations

import math
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.config import Settings
from valueloop.errors import InvalidInput, NotFound
from valueloop.learn import candidates as kinds
from valueloop.learn import dataset as datasets
from valueloop.learn import evaluation, model_tests, registry, rendering, tracking
from valueloop.learn.model_tests import TestResult
from valueloop.learn.search import search, validation_cut
from valueloop.learn.serving import pipeline
from valueloop.learn.steps import METRIC_PREFIX, timed
from valueloop.learn.tables import TrainingRun
from valueloop.learn.views import CandidateResult, ReproduceReport, RunView, TrainingReport
from valueloop.outcomes import audit
from valueloop.store import intents
from valueloop.outcomes.privacy import require_privacy_approval
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.spec import KPI, Candidate, ChosenThreshold, ModelObjective, UseCaseSpec, metrics_of
from valueloop.outcomes.usecases import get_usecase, spec_of, viewed
from valueloop.outcomes.users import get_user
from valueloop.store.models import UseCase

if TYPE_CHECKING:
    from concurrent.futures import Future

    import pandas as pd
    from rich.progress import Progress

#: Metrics match on reproduction when they agree to this many decimals.
REPRODUCE_TOLERANCE = 1e-9


@dataclass
class _Job:
    """What every candidate of one training shares."""

    settings: Settings
    usecase: UseCase
    objective: ModelObjective
    prepared: datasets.Prepared
    cut: datasets.Cut
    dataset_version: int
    dpia_version: int
    experiment_id: str
    training_id: str
    git_commit: str | None
    actor: str
    progress: Progress | None
    threshold_kpi: KPI | None = None
    #: the pipeline serving applies to raw records (learn/serving.py), and what the report says of it
    serving: tuple[dict[str, Any] | None, str] = (None, "")
    reproduces: str | None = None
    #: wall seconds of the shared steps (learn/steps.py)
    steps: dict[str, float] = field(default_factory=dict)
    #: the candidates' preprocessing, fitted once per set of rows (learn/candidates.py)
    preprocessing: kinds.Preprocessing = field(init=False)
    #: the training rows cut to choose a decision threshold on, by validation share
    _validation: dict[float, tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]] = field(
        default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.preprocessing = kinds.Preprocessing(self.prepared.numeric, self.prepared.categorical)

    @cached_property
    def train_rows(self) -> tuple[pd.DataFrame, pd.Series]:
        return self.prepared.X.iloc[self.cut.train], self.prepared.y.iloc[self.cut.train]

    def validation_rows(self, share: float) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
        """The training rows cut into rows to fit and rows to choose the threshold on, once per
        training: the candidates fit on the same rows, so they share their preprocessing."""
        if share not in self._validation:
            X, y = self.train_rows
            self._validation[share] = validation_cut(X, y, share, self.objective.split.seed, self.prepared.target)
        return self._validation[share]

    @property
    def segment_columns(self) -> list[str]:
        """The columns evaluation measures per value of (features or not)."""
        objective = self.objective
        return list(dict.fromkeys([*objective.segments, *(f.column for f in objective.tests.segment_floors)]))

    @cached_property
    def test_rows(self) -> tuple[pd.DataFrame, pd.Series]:
        """The test rows' features and segment columns; not every column, as copying identifiers
        and free text (an email column) costs more than predicting."""
        columns = list(dict.fromkeys([*self.prepared.features, *self.segment_columns]))
        return self.prepared.frame[columns].iloc[self.cut.test], self.prepared.y.iloc[self.cut.test]


@dataclass
class _Outcome:
    row: TrainingRun
    result: CandidateResult
    model_uri: str | None
    #: the folder the drawing process saves the run's figures in, and its jobs (see :func:`_settle`)
    plots: tuple[str, list[Future[list[str]]]] | None = None


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """NaN is not JSON (PostgreSQL refuses it): an undefined metric is stored as null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()}


def _check_kpis(spec: UseCaseSpec) -> None:
    known = metrics_of(spec.model.task)
    for i, kpi in enumerate(spec.kpis):
        if kpi.kind == "model" and kpi.metric not in known:
            raise InvalidInput(f"kpis[{i}].metric: '{kpi.metric}' does not fit task {spec.model.task}; "
                               f"a model KPI is one of {', '.join(sorted(known))}")


def _evaluate(model: Any, job: _Job, target: datasets.Target, score: Any, steps: dict[str, float]) -> dict[str, Any]:
    """The evaluation record of the test scores."""
    objective, prepared, seed = job.objective, job.prepared, job.objective.split.seed
    test, y = job.test_rows
    with timed(steps, "evaluate"):
        truth = (y == target.positive).to_numpy(int)
        result = {
            "metrics": evaluation.metrics(y.to_numpy(), score, target),
            "segments": evaluation.segments(test, job.segment_columns, y.to_numpy(), score, target),
            "calibration": evaluation.calibration(truth, score) if target.task == "binary" else None,
        }
    with timed(steps, "importance"):
        result["importance"] = evaluation.importance(model, test[prepared.features], y, score,
                                                     objective.primary_metric, target, seed)
        result["importance_sample"] = {"rows": min(len(test), evaluation.IMPORTANCE_ROWS),
                                       "repeats": evaluation.IMPORTANCE_REPEATS, "seed": seed}
    return result | {"target": target.record()}


def _fit(job: _Job, candidate: Candidate, params: dict[str, Any]) -> tuple[Any, datasets.Target, list[TestResult]]:
    """Fit a candidate on the training rows. A binary classifier carries its positive class and
    decision threshold (scikit-learn's FixedThresholdClassifier), chosen on validation rows cut
    from the training rows when the use case names a KPI for it (then the model fits the rest)."""
    objective, prepared, seed = job.objective, job.prepared, job.objective.split.seed
    target, (X, y), checks = prepared.target, job.train_rows, []

    def fit(X: pd.DataFrame, y: pd.Series) -> Any:
        return kinds.fit(candidate, params, objective.task, seed, job.preprocessing, X, y,
                         hook_modules=job.settings.hook_modules)

    if target.task != "binary":
        return fit(X, y), target, checks
    from sklearn.model_selection import FixedThresholdClassifier

    kpi, chosen = job.threshold_kpi, objective.decision_threshold
    if kpi is not None and isinstance(chosen, ChosenThreshold):
        X_fit, y_fit, X_val, y_val = job.validation_rows(chosen.validation_size)
        model = fit(X_fit, y_fit)
        threshold, value = evaluation.choose_threshold(y_val.to_numpy(), evaluation.scores(model, X_val, target),
                                                       target, kpi)
        target = replace(target, threshold=threshold)
        checks.append(TestResult(
            name="decision_threshold", passed=kpi.met_by(value),
            detail=f"threshold {threshold:.4f} chosen on {len(X_val)} validation rows: {kpi.metric} "
                   f"{value:.4f} for KPI '{kpi.name}' ({kpi})"))
    else:
        model = fit(X, y)
    wrapped = FixedThresholdClassifier(model, threshold=target.threshold, pos_label=target.positive,
                                       response_method="predict_proba")
    for fitted in ("feature_names_in_", "n_features_in_"):  # what its own fit would have copied
        if hasattr(model, fitted):
            setattr(wrapped, fitted, getattr(model, fitted))
    return wrapped, target, checks


def _tags(job: _Job, candidate: Candidate) -> dict[str, str]:
    tags = {
        tracking.TAG + "usecase": job.usecase.name,
        tracking.TAG + "dataset_version": str(job.dataset_version),
        tracking.TAG + "dpia_version": str(job.dpia_version),
        tracking.TAG + "training_id": job.training_id,
        tracking.TAG + "candidate": candidate.name,
        tracking.TAG + "kind": candidate.kind,
        tracking.TAG + "seed": str(job.objective.split.seed),
        **{f"{tracking.TAG}package.{p}": v for p, v in tracking.package_versions().items()},
    }
    if job.git_commit:
        tags["mlflow.source.git.commit"] = job.git_commit
    if job.reproduces:
        tags[tracking.TAG + "reproduces"] = job.reproduces
    return tags


def _train_candidate(job: _Job, candidate: Candidate, params: dict[str, Any] | None,
                     baseline: tuple[str, float | None] | None) -> _Outcome:
    """Train, evaluate, test and log one candidate; any crash is recorded, never raised."""
    import mlflow

    objective, prepared, cut, seed = job.objective, job.prepared, job.cut, job.objective.split.seed
    started = time.perf_counter()
    steps: dict[str, float] = {}
    run = mlflow.start_run(experiment_id=job.experiment_id, run_name=candidate.name, tags=_tags(job, candidate))
    intents.crash_point("after-mlflow-run-start")
    task_id = job.progress.add_task(f"train {candidate.name}", total=None) if job.progress else None
    X, y = job.train_rows
    trials, evaluated, tests, model_uri, error, target, plots = 0, None, [], None, None, None, None
    try:
        with timed(steps, "plots_wait"):  # the fit has the cores to itself (learn/rendering.py)
            rendering.idle()
        if params is None:
            params = dict(candidate.params)
            if candidate.search is not None:
                with timed(steps, "search"):
                    params, trials = search(candidate, prepared.target, objective.primary_metric, seed,
                                            job.preprocessing, X, y, job.progress, job.settings.hook_modules)
        with timed(steps, "fit"):
            model, target, tests = _fit(job, candidate, params)
        with timed(steps, "evaluate"):
            score = evaluation.scores(model, job.test_rows[0][prepared.features], target)
        with timed(steps, "plots"):  # drawn while the metrics and importance are computed; logged by _settle
            folder = tempfile.mkdtemp(prefix="valueloop-plots-")
            plots = folder, [rendering.submit(evaluation.draw, folder,
                                              *evaluation.plot_rows(job.test_rows[1].to_numpy(), score, seed), target)]
        evaluated = _evaluate(model, job, target, score, steps)
        with timed(steps, "plots"):
            plots[1].append(rendering.submit(evaluation.draw_importance, folder, evaluated["importance"]))
        with timed(steps, "model_tests"):
            reference = None
            if baseline is not None:
                if baseline[1] is None:
                    raise RuntimeError(f"baseline '{baseline[0]}' failed, so no candidate can be compared with it")
                reference = (baseline[0], baseline[1])
            tests += model_tests.run(model, objective, target, job.test_rows[0], prepared.features, evaluated,
                                     reference, seed)
        with timed(steps, "log_model"):
            custom = candidate.kind == "custom"
            source = kinds.custom_source(candidate, job.settings.hook_modules) if custom else None
            example = job.test_rows[0][prepared.features].head(5)
            model_uri = tracking.log_model(model, candidate.kind, example, objective.task,
                                           [source] if source else None, job.serving[0]).model_uri
        with timed(steps, "log_run"):
            tracking.log_run(
                job.settings, run.info.run_id, params={"split." + k: v for k, v in cut.record.items()} | {"seed": seed}
                | {f"importance.{k}": v for k, v in evaluated["importance_sample"].items() if k != "seed"}
                | {f"model.{k}": v for k, v in params.items()},
                metrics={k: v for k, v in evaluated["metrics"].items() if not math.isnan(v)}
                | ({"calibration_error": evaluated["calibration"]["ece"]} if evaluated["calibration"] else {})
                | {METRIC_PREFIX + k: v for k, v in steps.items()},
                tags={tracking.TAG + "tests_passed": str(all(t.passed for t in tests)).lower()},
                documents={"evaluation.json": evaluated,
                           "model_tests.json": {"tests": [t.model_dump() for t in tests]}})
        mlflow.end_run()
    except (Exception, KeyboardInterrupt) as exc:
        error = f"{type(exc).__name__}: {exc}"
        tracking.client(job.settings).set_tag(run.info.run_id, tracking.TAG + "error", error[:5000])
        while mlflow.active_run() is not None:  # a failing search trial may still be open
            mlflow.end_run("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        if isinstance(exc, KeyboardInterrupt):
            raise
    finally:
        if job.progress is not None and task_id is not None:
            job.progress.update(task_id, total=1, completed=1)
    metrics = _finite(evaluated["metrics"]) if evaluated else {}
    status = "failed" if error else "finished"
    row = TrainingRun(
        run_id=run.info.run_id, usecase=job.usecase.name, training_id=job.training_id,
        dataset_version=job.dataset_version, dpia_version=job.dpia_version,
        candidate=candidate.model_dump(mode="json"), params=params or {}, metrics=metrics,
        features=prepared.features, seed=seed, split=cut.record, git_commit=job.git_commit,
        target=target.record() if target else None,
        status=status, error=error, reproduces=job.reproduces, actor=job.actor,
    )
    result = CandidateResult(
        candidate=candidate.name, kind=candidate.kind, run_id=run.info.run_id, status=status,
        error=error, primary=metrics.get(objective.primary_metric), metrics=metrics, tests=tests,
        tests_passed=bool(tests) and all(t.passed for t in tests), trials=trials,
        seconds=round(time.perf_counter() - started, 2), steps=steps,
    )
    return _Outcome(row=row, result=result, model_uri=model_uri, plots=plots)


def _settle(job: _Job, outcome: _Outcome) -> None:
    """Log the candidate's figures under ``plots/`` once drawn. A figure that could not be drawn
    fails the candidate, as a failure in any other step does: recorded on its run and its row,
    and never registered."""
    if outcome.plots is None:
        return
    folder, drawing = outcome.plots
    run_id = outcome.result.run_id
    mlflow_client = tracking.client(job.settings)
    try:
        with timed(job.steps, "plots_wait"):
            for pending in drawing:
                pending.result()
        mlflow_client.log_artifacts(run_id, folder, "plots")
    except Exception as exc:
        if outcome.result.error:  # the candidate failed already; its first error is the one to read
            return
        error = f"drawing the evaluation figures: {type(exc).__name__}: {exc}"
        mlflow_client.set_tag(run_id, tracking.TAG + "error", error[:5000])
        mlflow_client.set_terminated(run_id, "FAILED")
        outcome.row.status = outcome.result.status = "failed"
        outcome.row.error = outcome.result.error = error
        outcome.model_uri = None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _job(session: Session, settings: Settings, actor: str | None, name: str,
         dataset_version: int | None, progress: Progress | None) -> tuple[_Job, UseCaseSpec]:
    """Permission, gates and every check of the input, before anything is trained."""
    from valueloop.data import get_version, read_version

    usecase = get_usecase(session, name)
    acting = get_user(session, actor)
    require(session, acting, Action.train, usecase)
    assessment = require_privacy_approval(session, usecase)
    spec = spec_of(usecase)
    _check_kpis(spec)
    version = get_version(session, usecase.name, dataset_version)
    rendering.start(evaluation.prepare_drawing)  # its imports while the data is read, not beside a fit
    steps: dict[str, float] = {}
    with timed(steps, "read"):
        table = read_version(session, usecase.name, version.version)
    with timed(steps, "prepare"):
        prepared = datasets.prepare(table, spec.model, assessment.treatments, version.version)
        serving = pipeline(version, prepared.features, spec.model.features.upstream)
    with timed(steps, "split"):
        cut = datasets.split(prepared, spec.model.split, spec.model.task)
    with timed(steps, "tracking"):
        experiment_id = tracking.experiment(settings, usecase.name)
        commit = tracking.git_commit()
    job = _Job(
        settings=settings, usecase=usecase, objective=spec.model, prepared=prepared, cut=cut,
        dataset_version=version.version, dpia_version=assessment.version,
        experiment_id=experiment_id, training_id=uuid.uuid4().hex,
        git_commit=commit, actor=acting.name, progress=progress, serving=serving,
        threshold_kpi=spec.threshold_kpi(), steps=steps,
    )
    return job, spec


def train(session: Session, settings: Settings, actor: str | None, usecase_name: str, *,
          dataset_version: int | None = None, candidates: list[str] | None = None,
          progress: Progress | None = None) -> TrainingReport:
    """Train the candidates (the baseline always, to compare with), register the best that passes."""
    job, spec = _job(session, settings, actor, usecase_name, dataset_version, progress)
    objective = spec.model
    declared = kinds.declared(objective)
    base = kinds.baseline_of(declared)
    chosen = kinds.declared(objective, None if not candidates else
                            list(dict.fromkeys([*([base.name] if base else []), *candidates])))
    outcomes: list[_Outcome] = []
    reference: tuple[str, float | None] | None = None
    with intents.writing(settings, intents.MLFLOW_RUN, job.usecase.name, intents.training_target(job.training_id),
                         job.actor, experiment_id=job.experiment_id) as intent:
        for candidate in chosen:
            outcome = _train_candidate(job, candidate, None, None if candidate is base else reference)
            if candidate is base:
                reference = (candidate.name, outcome.result.primary)
            outcomes.append(outcome)
        plot, drawing = _comparison_plot(job, outcomes)  # drawn while the winner is registered
        for outcome in outcomes:
            _settle(job, outcome)
            session.add(outcome.row)
        session.flush()

        passing = [o for o in outcomes if o.result.tests_passed and o.model_uri]
        best = None
        for outcome in passing:
            if best is None or evaluation.better(objective.primary_metric, outcome.result.primary or 0.0,
                                                 best.result.primary or 0.0):
                best = outcome
        registered = None
        if best is not None:
            with timed(job.steps, "register"):
                row = registry.register(session, settings, job.actor, job.usecase, best.row,
                                        best.model_uri or "", best.result.tests, compile=objective.compile)
                registered = registry.view(session, row)
    intents.finish(session, intent, registered=registered.version if registered else None)
    with timed(job.steps, "comparison_plot"):
        drawing.result()
    audit.record(session, job.actor, "model.train", "training", job.training_id, usecase=job.usecase.name,
                 after={"dataset_version": job.dataset_version, "dpia_version": job.dpia_version,
                        "runs": {o.result.candidate: o.result.status for o in outcomes},
                        "registered": registered.version if registered else None})
    return TrainingReport(
        usecase=job.usecase.name, training_id=job.training_id, dataset_version=job.dataset_version,
        dpia_version=job.dpia_version, primary_metric=objective.primary_metric,
        threshold=objective.threshold, split=job.cut.record, features=job.prepared.features,
        serving=job.serving[1], results=[o.result for o in outcomes], best=best.result.candidate if best else None,
        registered=registered, comparison_plot=plot, experiment_id=job.experiment_id, steps=job.steps,
    )


def _comparison_plot(job: _Job, outcomes: list[_Outcome]) -> tuple[str, Future[None]]:
    """Where the chart of the candidates' primary metrics goes, and its drawing, submitted to the
    drawing process (a candidate's figures failing later changes none of its numbers)."""
    from pathlib import Path

    folder = Path(job.settings.home, "comparisons", job.usecase.name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job.training_id}.png"
    values = {o.result.candidate: (o.result.primary, o.result.tests_passed) for o in outcomes
              if o.result.primary is not None}
    return str(path), rendering.submit(evaluation.comparison_plot, values, job.objective.primary_metric,
                                       job.objective.threshold, str(path))


def _run_row(session: Session, run_id: str) -> TrainingRun:
    row = session.scalar(select(TrainingRun).where(TrainingRun.run_id == run_id))
    if row is None:
        raise NotFound(f"training run '{run_id}' does not exist; `valueloop runs USECASE` lists them")
    return row


def reproduce(session: Session, settings: Settings, actor: str | None, run_id: str,
              progress: Progress | None = None) -> ReproduceReport:
    """Train the run's candidate again on the same dataset version, params and seed; compare."""
    original = _run_row(session, run_id)
    if original.status != "finished":
        raise InvalidInput(f"run {run_id}: only a finished run can be reproduced; it {original.status}"
                           f" with {original.error}")
    job, spec = _job(session, settings, actor, original.usecase, original.dataset_version, progress)
    if job.cut.record["test_digest"] != original.split["test_digest"] or spec.model.split.seed != original.seed:
        raise InvalidInput(f"run {run_id}: the use case's split changed since (was {original.split}); "
                           "the run can no longer be reproduced as it was")
    if job.prepared.features != original.features:
        raise InvalidInput(f"run {run_id}: the use case's features changed since (were "
                           f"{', '.join(original.features)}); the run can no longer be reproduced as it was")
    job.reproduces = run_id
    candidate = Candidate.model_validate(original.candidate)
    outcome = _train_candidate(job, candidate, dict(original.params), None)
    _settle(job, outcome)
    session.add(outcome.row)
    session.flush()
    if outcome.result.error:
        raise InvalidInput(f"run {run_id}: reproduction failed: {outcome.result.error}")
    differences = {
        k: [v, outcome.result.metrics.get(k)] for k, v in original.metrics.items()
        if v is not None and (outcome.result.metrics.get(k) is None
                              or abs(v - outcome.result.metrics[k]) > REPRODUCE_TOLERANCE)
    }
    audit.record(session, job.actor, "model.reproduce", "run", run_id, usecase=job.usecase.name,
                 after={"new_run": outcome.row.run_id, "matches": not differences})
    return ReproduceReport(original_run=run_id, new_run=outcome.row.run_id,
                           dataset_version=original.dataset_version, matches=not differences,
                           differences=differences, metrics=outcome.result.metrics)


def run_view(row: TrainingRun) -> RunView:
    return RunView(
        run_id=row.run_id, usecase=row.usecase, training_id=row.training_id,
        candidate=row.candidate["name"], kind=row.candidate["kind"], status=row.status, error=row.error,
        dataset_version=row.dataset_version, dpia_version=row.dpia_version, params=row.params,
        metrics=row.metrics, seed=row.seed, split=row.split, git_commit=row.git_commit,
        reproduces=row.reproduces, actor=row.actor, created_at=row.created_at,
    )


def list_runs(session: Session, actor: str | None, usecase: str) -> list[RunView]:
    found = viewed(session, actor, usecase)
    rows = session.scalars(select(TrainingRun).where(TrainingRun.usecase == found.name)
                           .order_by(TrainingRun.id))
    return [run_view(r) for r in rows]
