"""HTTP routes of the Learn phase: training runs, registered models, the owner's acceptance and
promotion. Training reads the dataset and fits models, so it runs on the server's machine only."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from valueloop.config import load_settings
from valueloop.learn import registry
from valueloop.learn.training import list_runs
from valueloop.learn.views import ModelVersionView, RunView
from valueloop.server.deps import DB, Actor

router = APIRouter(prefix="/api/usecases", tags=["learn"])


class Acceptance(BaseModel):
    accepted: bool = Field(description="false rejects the version")
    comment: str = Field(description="why, in the owner's words")


class Promotion(BaseModel):
    alias: str = Field("champion", description="champion or challenger")


@router.get("/{name}/runs")
def runs(name: str, s: DB, actor: Actor) -> list[RunView]:
    return list_runs(s, actor, name)


@router.get("/{name}/models")
def models(name: str, s: DB, actor: Actor) -> list[ModelVersionView]:
    return registry.list_models(s, actor, name)


@router.get("/{name}/models/{ref}")
def model(name: str, ref: str, s: DB, actor: Actor) -> ModelVersionView:
    """A version by number or alias, with its evaluation next to the targets."""
    return registry.get_model(s, actor, name, ref)


@router.post("/{name}/models/{version}/acceptance")
def accept(name: str, version: int, body: Acceptance, s: DB, actor: Actor) -> ModelVersionView:
    return registry.accept(s, actor, name, version, accepted=body.accepted, comment=body.comment)


@router.post("/{name}/models/{version}/promotion")
def promote(name: str, version: int, body: Promotion, s: DB, actor: Actor) -> ModelVersionView:
    return registry.promote(s, load_settings(), actor, name, version, body.alias)
