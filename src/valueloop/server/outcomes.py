"""HTTP routes of the Outcomes phase: use cases, lifecycle, members, outcomes and the DPIA."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field, FiniteFloat

from valueloop.errors import InvalidInput
from valueloop.outcomes import privacy, usecases
from valueloop.outcomes.lifecycle import State
from valueloop.outcomes.roles import Role
from valueloop.outcomes.spec import ColumnTreatment, UseCaseSpec
from valueloop.server.deps import DB, Actor

router = APIRouter(prefix="/api/usecases", tags=["use cases"])


class Advance(BaseModel):
    state: State
    reason: str | None = None


class Outcomes(BaseModel):
    kpis: dict[str, FiniteFloat] = Field(description="measured value per KPI name")


class Membership(BaseModel):
    user: str
    role: Role


class Approval(BaseModel):
    conditions: list[ColumnTreatment] = Field(default_factory=list)
    comment: str | None = None


class Rejection(BaseModel):
    reason: str


@router.get("")
def list_usecases(s: DB, actor: Actor) -> list[usecases.UseCaseView]:
    return usecases.list_usecases(s, actor)


@router.post("", status_code=201)
def create_usecase(spec: UseCaseSpec, s: DB, actor: Actor) -> usecases.UseCaseDetail:
    return usecases.create_usecase(s, actor, spec)


@router.get("/{name}")
def show_usecase(name: str, s: DB, actor: Actor) -> usecases.UseCaseDetail:
    return usecases.show_usecase(s, actor, name)


@router.put("/{name}")
def update_usecase(name: str, spec: UseCaseSpec, s: DB, actor: Actor) -> usecases.UseCaseDetail:
    if spec.name != name:
        raise InvalidInput(f"name: the body names '{spec.name}' but the path names '{name}'")
    return usecases.update_usecase(s, actor, spec)


@router.get("/{name}/value")
def value(name: str, s: DB, actor: Actor) -> usecases.ValueView:
    return usecases.show_value(s, actor, name)


@router.post("/{name}/advance")
def advance(name: str, body: Advance, s: DB, actor: Actor) -> usecases.UseCaseDetail:
    return usecases.advance(s, actor, name, body.state, body.reason)


@router.post("/{name}/outcomes")
def record_outcomes(name: str, body: Outcomes, s: DB, actor: Actor) -> usecases.UseCaseDetail:
    return usecases.record_outcomes(s, actor, name, body.kpis)


@router.get("/{name}/members")
def members(name: str, s: DB, actor: Actor) -> list[usecases.MemberView]:
    return usecases.list_members(s, actor, name)


@router.post("/{name}/members", status_code=201)
def add_member(name: str, body: Membership, s: DB, actor: Actor) -> list[usecases.MemberView]:
    return usecases.add_member(s, actor, name, body.user, body.role)


@router.delete("/{name}/members/{user}/{role}")
def remove_member(name: str, user: str, role: Role, s: DB, actor: Actor) -> list[usecases.MemberView]:
    return usecases.remove_member(s, actor, name, user, role)


@router.get("/{name}/privacy", tags=["privacy"])
def privacy_history(name: str, s: DB, actor: Actor) -> list[privacy.AssessmentView]:
    return privacy.history(s, actor, name)


@router.post("/{name}/privacy/submit", tags=["privacy"], status_code=201)
def submit_privacy(name: str, s: DB, actor: Actor) -> privacy.AssessmentView:
    return privacy.submit(s, actor, name)


@router.post("/{name}/privacy/approve", tags=["privacy"])
def approve_privacy(name: str, body: Approval, s: DB, actor: Actor) -> privacy.AssessmentView:
    return privacy.approve(s, actor, name, body.conditions, body.comment)


@router.post("/{name}/privacy/reject", tags=["privacy"])
def reject_privacy(name: str, body: Rejection, s: DB, actor: Actor) -> privacy.AssessmentView:
    return privacy.reject(s, actor, name, body.reason)
