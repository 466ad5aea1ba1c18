"""The Models page: the runs of a training compared, the registered versions, and one version's
evaluation (KPI targets met or missed, model tests, segments, the plots Learn logged to MLflow)
with the owner's acceptance and promotion offered to those who may."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.config import Settings
from valueloop.console import charts
from valueloop.console.web import Form, Number, Problems, View, etag_of, text
from valueloop.deploy.rollback import rollback
from valueloop.errors import InvalidInput, NotFound
from valueloop.learn import registry, tracking
from valueloop.learn.registry import list_models
from valueloop.learn.tables import TrainingRun
from valueloop.learn.training import list_runs
from valueloop.learn.views import ModelVersionView, RunView
from valueloop.outcomes.roles import Action, allows, require
from valueloop.outcomes.usecases import UseCaseView, get_usecase, spec_of
from valueloop.outcomes.usecases import view as usecase_view
from valueloop.outcomes.users import get_user
from valueloop.store.models import UseCase

router = APIRouter()
#: the evaluation figures Learn logs under ``plots/``, by task
PLOTS = {"classification": ("roc.png", "precision_recall.png", "calibration.png", "confusion_matrix.png",
                            "feature_importance.png"),
         "regression": ("residuals.png", "actual_vs_predicted.png", "feature_importance.png")}


class Training(BaseModel):
    training_id: str
    started: str
    dataset_version: int
    actor: str
    candidates: int


class KpiRow(BaseModel):
    """A KPI target beside the selected version: a model KPI as evaluated on held-out data, a
    business KPI as recorded on the use case's current cycle (None until one is)."""

    name: str
    kind: str
    target: str
    value: float | None
    measured_on: str | None
    verdict: Literal["met", "missed"] | None


class ModelsPage(BaseModel):
    usecase: UseCaseView
    primary_metric: str
    threshold: float
    metrics: list[str]
    trainings: list[Training]
    training: str | None
    runs: list[RunView]
    comparison: dict[str, Any] | None
    models: list[ModelVersionView]
    selected: ModelVersionView | None
    kpis: list[KpiRow]
    trainer: str | None
    segments: dict[str, dict[str, dict[str, Any]]]
    plots: list[str]
    mlflow_url: str | None
    may_accept: bool
    may_promote: bool
    champion: int | None


def _trainings(runs: list[RunView]) -> list[Training]:
    found: dict[str, Training] = {}
    for run in runs:
        if run.training_id not in found:
            found[run.training_id] = Training(training_id=run.training_id, started=f"{run.created_at:%Y-%m-%d %H:%M}",
                                              dataset_version=run.dataset_version, actor=run.actor, candidates=0)
        found[run.training_id].candidates += 1
    return list(reversed(found.values()))


@lru_cache(maxsize=64)
def _plot(mlflow_uri: str, run_id: str, name: str) -> bytes | None:
    return tracking.artifact(mlflow_uri, run_id, f"plots/{name}")


@lru_cache(maxsize=64)
def _experiment(mlflow_uri: str, usecase: str) -> str | None:
    """The id of the use case's MLflow experiment (it never changes once made)."""
    from mlflow import MlflowClient

    found = MlflowClient(tracking_uri=mlflow_uri).get_experiment_by_name(usecase)
    return None if found is None else str(found.experiment_id)


@lru_cache(maxsize=64)
def _verdicts(mlflow_uri: str, usecase: str, training_id: str) -> dict[str, bool]:
    """Each run of a training: did it pass its model tests (the tag Learn sets on the run)."""
    from mlflow import MlflowClient

    from valueloop.learn.tracking import TAG

    experiment = _experiment(mlflow_uri, usecase)
    if experiment is None:
        return {}
    runs = MlflowClient(tracking_uri=mlflow_uri).search_runs([experiment],
                                                             f"tags.`{TAG}training_id` = '{training_id}'")
    return {r.info.run_id: r.data.tags.get(TAG + "tests_passed") == "true" for r in runs}


def run_plot(session: Session, settings: Settings, actor: str, usecase: str, run_id: str, name: str) -> bytes:
    """A plot of a run of the use case, for a member of it."""
    found = get_usecase(session, usecase)
    require(session, get_user(session, actor), Action.view, found)
    task = spec_of(found).model.task
    run = session.scalar(select(TrainingRun).where(TrainingRun.run_id == run_id, TrainingRun.usecase == found.name))
    if run is None or name not in PLOTS[task]:
        raise NotFound(f"run {run_id} of '{usecase}' has no plot '{name}'; plots: {', '.join(PLOTS[task])}")
    png = _plot(settings.mlflow_uri, run_id, name)
    if png is None:
        raise NotFound(f"run {run_id} of '{usecase}' logged no plot '{name}' (it failed before its evaluation)")
    return png


def _comparison(runs: list[RunView], metric: str, threshold: float, passed: dict[str, bool]) -> dict[str, Any] | None:
    rows = [{"candidate": r.candidate, "value": r.metrics[metric],
             "verdict": "passed" if passed.get(r.run_id) else "failed"}
            for r in runs if r.metrics.get(metric) is not None]
    return charts.bars_with_threshold(rows, metric, threshold) if rows else None


def _kpi_rows(found: UseCase, selected: ModelVersionView | None) -> list[KpiRow]:
    cycle = found.cycles[-1] if found.cycles else None
    rows = []
    for check in selected.kpis if selected else []:
        value, on, met = check.value, "held-out data", check.met
        if check.kind == "business":
            recorded = cycle.kpi_outcomes.get(check.name) if cycle else None
            value, on, met = (recorded["value"], f"cycle {cycle.number}", recorded["met"]) if recorded \
                else (None, None, None)
        rows.append(KpiRow(name=check.name, kind=check.kind, target=check.target, value=value, measured_on=on,
                           verdict=None if met is None else "met" if met else "missed"))
    return rows


def build(view: View, usecase: str, training: str | None = None, version: int | None = None) -> ModelsPage:
    session, settings, actor = view.s, view.settings, view.name
    found = get_usecase(session, usecase)
    objective = spec_of(found).model
    runs = list_runs(session, actor, usecase)
    models = list_models(session, actor, usecase)
    trainings = _trainings(runs)
    if training is None and trainings:
        training = trainings[0].training_id
    if training is not None and training not in {t.training_id for t in trainings}:
        raise NotFound(f"training: '{training}' is not a training of '{usecase}'")
    shown = [r for r in runs if r.training_id == training]
    passed = _verdicts(settings.mlflow_uri, found.name, training) if training else {}
    metrics = sorted({k for r in shown for k in r.metrics}, key=lambda k: (k != objective.primary_metric, k))
    selected = None
    if models:
        selected = models[-1] if version is None else next((m for m in models if m.version == version), None)
        if selected is None:
            raise NotFound(f"version: '{usecase}' has no model version {version}; "
                           f"versions: {', '.join(str(m.version) for m in models)}")
    trainer = segments = None
    if selected is not None:
        trainer = session.scalar(select(TrainingRun.actor).where(TrainingRun.run_id == selected.run_id))
        segments = tracking.evaluation(settings.mlflow_uri, selected.run_id).get("segments")
    champion = next((m.version for m in models if "champion" in m.aliases), None)
    mlflow_url, experiment = None, _experiment(settings.mlflow_uri, found.name) if settings.mlflow_ui_url else None
    if selected is not None and experiment is not None:
        mlflow_url = f"{settings.mlflow_ui_url.rstrip('/')}/#/experiments/{experiment}/runs/{selected.run_id}"
    return ModelsPage(
        usecase=usecase_view(found), primary_metric=objective.primary_metric, threshold=objective.threshold,
        metrics=metrics, trainings=trainings, training=training, runs=shown,
        comparison=_comparison(shown, objective.primary_metric, objective.threshold, passed),
        models=list(reversed(models)), selected=selected, kpis=_kpi_rows(found, selected), trainer=trainer, segments=segments or {},
        plots=list(PLOTS[objective.task]) if selected else [],
        mlflow_url=mlflow_url, may_accept=allows(session, view.user, Action.accept_model, found) and trainer != actor,
        may_promote=allows(session, view.user, Action.promote, found), champion=champion,
    )


def _render(view: View, name: str, training: str | None, version: int | None,
            problems: Problems | None = None) -> Response:
    found = build(view, name, training, version)
    return view.render("models.html", found, nav="usecases", etag=etag_of(*found.models), problems=problems)


@router.get("/usecases/{name}/models")
def page(name: str, view: View, training: str | None = None, version: Number = None) -> Response:
    return _render(view, name, training, version)


@router.get("/usecases/{name}/runs/{run_id}/plots/{plot}")
def plot(name: str, run_id: str, plot: str, view: View) -> Response:
    """An evaluation figure Learn logged to MLflow; a run never changes, so the browser keeps it."""
    png = run_plot(view.s, view.settings, view.name, name, run_id, plot)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})


def _fresh(view: View, form: Form, name: str) -> None:
    """Acceptance, promotion and rollback were decided on the versions as the page showed them."""
    view.fresh(form, etag_of(*list_models(view.s, view.name, name)[::-1]), f"the model versions of '{name}'")


@router.post("/usecases/{name}/models/{version}/acceptance")
def accept(name: str, version: int, view: View, form: Form) -> Response:
    _fresh(view, form, name)
    verdict, comment = text(form, "verdict"), text(form, "comment")
    if verdict not in ("accept", "reject"):
        raise InvalidInput(f"verdict: must be accept or reject, got {verdict!r}")
    return view.attempt(
        lambda s: registry.accept(s, view.name, name, version, accepted=verdict == "accept", comment=comment),
        f"/usecases/{name}/models?version={version}",
        lambda problems: _render(view, name, None, version, problems), fields={"comment"})


@router.post("/usecases/{name}/models/{version}/promotion")
def promote(name: str, version: int, view: View, form: Form) -> Response:
    _fresh(view, form, name)
    alias = text(form, "alias")
    return view.attempt(lambda s: registry.promote(s, view.settings, view.name, name, version, alias),
                        f"/usecases/{name}/models?version={version}",
                        lambda problems: _render(view, name, None, version, problems))


@router.post("/usecases/{name}/rollback")
def roll_back(name: str, view: View, form: Form) -> Response:
    _fresh(view, form, name)
    return view.attempt(lambda s: rollback(s, view.settings, view.name, name), f"/usecases/{name}/models",
                        lambda problems: _render(view, name, None, None, problems))
