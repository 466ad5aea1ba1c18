"""HTTP routes of the Learn phase: training and its runs, reproduction, registered models, the
owner's acceptance and promotion. A training answers when it is done, as on the command line."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from valueloop.deploy.rollback import RollbackView
from valueloop.deploy.rollback import rollback as rollback_
from valueloop.learn import modelcard, registry
from valueloop.learn import training
from valueloop.learn.modelcard import ModelCardView
from valueloop.learn.views import ModelVersionView, ReproduceReport, RunView, TrainingReport
from valueloop.server.deps import DB, Actor, AppSettings, RowId

router = APIRouter(tags=["learn"])
USECASE = "/api/usecases/{name}"


class Training(BaseModel):
    dataset_version: int | None = Field(None, ge=0, le=2**31 - 1, description="default: the newest")
    candidates: list[str] | None = Field(None, description="train only these; the baseline always trains")


class Acceptance(BaseModel):
    accepted: bool = Field(description="false rejects the version")
    comment: str = Field(description="why, in the owner's words")


class CardRequest(BaseModel):
    limitations: str | None = Field(None, description="the model's limitations and known failure cases, "
                                                      "by the data scientist; the card states them")


class Promotion(BaseModel):
    alias: str = Field("champion", description="champion or challenger")


@router.post(f"{USECASE}/runs", status_code=201)
def train(name: str, body: Training, s: DB, actor: Actor, settings: AppSettings) -> TrainingReport:
    """Train the candidates, compare them, register the best one that passes its tests."""
    return training.train(s, settings, actor, name, dataset_version=body.dataset_version,
                          candidates=body.candidates)


@router.get(f"{USECASE}/runs")
def runs(name: str, s: DB, actor: Actor) -> list[RunView]:
    return training.list_runs(s, actor, name)


@router.post("/api/runs/{run_id}/reproduction", status_code=201)
def reproduce(run_id: str, s: DB, actor: Actor, settings: AppSettings) -> ReproduceReport:
    """Train the run again from its dataset version, params and seed; compare the metrics."""
    return training.reproduce(s, settings, actor, run_id)


@router.get(f"{USECASE}/models")
def models(name: str, s: DB, actor: Actor) -> list[ModelVersionView]:
    return registry.list_models(s, actor, name)


@router.get(f"{USECASE}/models/{{ref}}")
def model(name: str, ref: str, s: DB, actor: Actor) -> ModelVersionView:
    """A version by number or alias, with its evaluation next to the targets."""
    return registry.get_model(s, actor, name, ref)


@router.post(f"{USECASE}/models/{{version}}/acceptance")
def accept(name: str, version: RowId, body: Acceptance, s: DB, actor: Actor) -> ModelVersionView:
    return registry.accept(s, actor, name, version, accepted=body.accepted, comment=body.comment)


@router.post(f"{USECASE}/models/{{version}}/card")
def model_card(name: str, version: RowId, body: CardRequest, s: DB, actor: Actor,
               settings: AppSettings) -> ModelCardView:
    """Generate the version's model card (Markdown and HTML) and keep it with the version."""
    return modelcard.generate(s, settings, actor, name, version, body.limitations)


@router.post(f"{USECASE}/models/{{version}}/card/signoff")
def sign_model_card(name: str, version: RowId, s: DB, actor: Actor, settings: AppSettings) -> ModelCardView:
    """The owner signs the card as it stands now; a later change of the card voids the sign-off."""
    return modelcard.sign(s, settings, actor, name, version)


@router.post(f"{USECASE}/models/{{version}}/promotion")
def promote(name: str, version: RowId, body: Promotion, s: DB, actor: Actor,
            settings: AppSettings) -> ModelVersionView:
    return registry.promote(s, settings, actor, name, version, body.alias)


@router.post(f"{USECASE}/rollback")
def rollback(name: str, s: DB, actor: Actor, settings: AppSettings) -> RollbackView:
    """Give the champion alias back to the version that held it before; servers follow."""
    return rollback_(s, settings, actor, name)
