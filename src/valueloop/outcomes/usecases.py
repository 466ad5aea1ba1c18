"""Use cases: formulation, members, lifecycle and cycles. One service layer under CLI and HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from valueloop.outcomes import audit, duties
from valueloop.outcomes.lifecycle import OWNED_BY_COMMAND, State, allowed_from, check_transition
from valueloop.outcomes.roles import Action, Role, require, roles_of
from valueloop.outcomes.spec import KPI, UseCaseSpec
from valueloop.outcomes.users import get_user
from valueloop.outcomes.value import CycleValue, ValueView, cycle_value
from valueloop.store.models import Cycle, Member, UseCase, User, utcnow


class MemberView(BaseModel):
    user: str
    role: Role


class KpiOutcome(BaseModel):
    value: float
    target: str
    met: bool


class CycleView(BaseModel):
    number: int
    started_at: datetime
    ended_at: datetime | None
    kpi_outcomes: dict[str, KpiOutcome]
    decision: str | None
    decision_comment: str | None
    decided_by: str | None
    value: CycleValue | None = None


class UseCaseView(BaseModel):
    name: str
    title: str
    state: State
    state_reason: str | None
    owner: str
    cycle: int | None
    next_states: list[State]
    members: list[MemberView]
    kpis: list[KPI]
    privacy: str = "not submitted"
    created_at: datetime
    updated_at: datetime


class UseCaseDetail(UseCaseView):
    business_goal: str
    cycles: list[CycleView]
    spec: dict[str, Any]


def get_usecase(session: Session, name: str, *, for_update: bool = False) -> UseCase:
    """The use case by name. ``for_update`` locks its row until the transaction ends (PostgreSQL),
    and reads it afresh: a change that reads the use case before writing it (state, a cycle's
    outcomes, a promotion) then waits for a concurrent one instead of overwriting it."""
    query = select(UseCase).where(UseCase.name == name)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    usecase = session.scalar(query)
    if usecase is None:  # named to nobody: which use cases exist is for their members to know
        raise NotFound(f"use case '{name}' does not exist; `valueloop usecase list` shows yours")
    return usecase


def viewed(session: Session, actor: str | None, name: str) -> UseCase:
    """The use case, for an actor who may read it. The one rule of every read: who asks comes
    first (no acting user is the same error whether the use case exists or not), then the use
    case, then a role on it."""
    acting = get_user(session, actor)
    usecase = get_usecase(session, name)
    require(session, acting, Action.view, usecase)
    return usecase


def spec_of(usecase: UseCase) -> UseCaseSpec:
    return UseCaseSpec.model_validate(usecase.spec)


def view(usecase: UseCase) -> UseCaseView:
    spec = spec_of(usecase)
    latest = usecase.assessments[-1] if usecase.assessments else None
    return UseCaseView(
        name=usecase.name,
        title=usecase.title,
        state=State(usecase.state),
        state_reason=usecase.state_reason,
        owner=spec.owner,
        cycle=usecase.cycles[-1].number if usecase.cycles else None,
        next_states=allowed_from(State(usecase.state)),
        members=[MemberView(user=m.user.name, role=Role(m.role)) for m in usecase.members],
        kpis=spec.kpis,
        privacy=f"v{latest.version} {latest.status}" if latest else "not submitted",
        created_at=usecase.created_at,
        updated_at=usecase.updated_at,
    )


def detail(usecase: UseCase) -> UseCaseDetail:
    spec = spec_of(usecase)
    return UseCaseDetail(
        **view(usecase).model_dump(),
        business_goal=usecase.spec["business_goal"],
        cycles=[CycleView.model_validate(c, from_attributes=True).model_copy(
            update={"value": cycle_value(spec, c.number, c.kpi_outcomes)}) for c in usecase.cycles],
        spec=usecase.spec,
    )


def _declared_users(session: Session, spec: UseCaseSpec) -> dict[str, User]:
    names = {u for u, _ in spec.memberships()}
    users = {u.name: u for u in session.scalars(select(User).where(User.name.in_(names)))}
    missing = sorted(names - set(users))
    if missing:
        raise InvalidInput(
            f"use case '{spec.name}' names unknown user(s): {', '.join(missing)}; "
            "add them first with `valueloop users add NAME`"
        )
    for user in users.values():
        _may_hold_a_role(user)
    return users


def _may_hold_a_role(user: User) -> None:
    if user.is_privacy_officer:
        raise PermissionDenied(f"{user.name} is a privacy officer and may hold no role on a use case: "
                               "the officer decides the DPIA of use cases they have no stake in")
    if user.is_system:
        raise PermissionDenied(f"{user.name} is an automated principal and holds no membership")


def members_by_role(usecase: UseCase) -> dict[Role, list[str]]:
    """The stored members, each role's users in the order they joined."""
    found: dict[Role, list[str]] = {}
    for member in sorted(usecase.members, key=lambda m: m.id or 0):
        found.setdefault(Role(member.role), []).append(member.user.name)
    return found


def _members_into_file(usecase: UseCase) -> None:
    """The stored file follows a membership change, so that it can be uploaded again as it is."""
    members = members_by_role(usecase)
    spec = dict(usecase.spec)
    spec["owner"] = members[Role.owner][0]
    spec["sponsor"] = (members.get(Role.sponsor) or [None])[0]
    spec["members"] = {role: members.get(Role(role), []) for role in spec["members"]}
    usecase.spec, usecase.spec_digest = spec, UseCaseSpec.model_validate(spec).digest()


def list_usecases(session: Session, actor: str | None) -> list[UseCaseView]:
    """The use cases the actor may see: their own, and every one for the admin and the privacy
    officers who hold no role on it."""
    acting = get_user(session, actor)
    found = session.scalars(select(UseCase).order_by(UseCase.name))
    return [view(u) for u in found if roles_of(session, acting, u)]


def show_usecase(session: Session, actor: str | None, name: str) -> UseCaseDetail:
    return detail(viewed(session, actor, name))


def show_value(session: Session, actor: str | None, name: str) -> ValueView:
    """The use case's value section with each cycle's intended and realized value and cost."""
    usecase = get_usecase(session, name)
    require(session, get_user(session, actor), Action.view, usecase)
    spec = spec_of(usecase)
    if spec.value is None:
        raise NotFound(f"use case '{name}' declares no value; add a value: section to its file and "
                       "`valueloop usecase update` it")
    figures = [cycle_value(spec, c.number, c.kpi_outcomes) for c in usecase.cycles]
    return ValueView(usecase=name, **spec.value.model_dump(), cycles=[f for f in figures if f is not None])


def list_members(session: Session, actor: str | None, name: str) -> list[MemberView]:
    return show_usecase(session, actor, name).members


def create_usecase(session: Session, actor: str | None, spec: UseCaseSpec) -> UseCaseDetail:
    """Formulate a new use case in ``draft``; the actor must be its owner or one of its analysts."""
    acting = get_user(session, actor)
    if session.scalar(select(UseCase.id).where(UseCase.name == spec.name)) is not None:
        raise Conflict(f"use case '{spec.name}' already exists; change it with `valueloop usecase update`")
    users = _declared_users(session, spec)
    formulators = {u for u, role in spec.memberships() if role in (Role.owner, Role.analyst)}
    if acting.name not in formulators:
        raise PermissionDenied(
            f"{acting.name} may not formulate use case '{spec.name}': requires role owner or "
            f"analyst in the file; those are {', '.join(sorted(formulators))}"
        )
    members: dict[Role, list[str]] = {}
    for user, role in spec.memberships():
        members.setdefault(role, []).append(user)
    held = {role for role, names in members.items() if acting.name in names}
    duties.check_changes(acting.name, held, None, spec, members)
    usecase = UseCase(
        name=spec.name, title=spec.title, state=State.draft, spec=spec.model_dump(mode="json"),
        spec_digest=spec.digest(),
    )
    session.add(usecase)
    for user, role in dict.fromkeys(spec.memberships()):
        usecase.members.append(Member(user_id=users[user].id, role=role))
    session.flush()
    audit.record(session, acting.name, "usecase.create", "usecase", spec.name, usecase=spec.name,
                 after={"state": State.draft, "spec_digest": usecase.spec_digest})
    return detail(usecase)


def update_usecase(session: Session, actor: str | None, spec: UseCaseSpec) -> UseCaseDetail:
    """Replace the use case file. A changed privacy section opens a new DPIA version to decide.

    Who may upload depends on what changed (see :mod:`valueloop.outcomes.duties`); members never
    change through the file."""
    from valueloop.outcomes import privacy

    usecase = get_usecase(session, spec.name)
    acting = get_user(session, actor)
    require(session, acting, Action.view, usecase)
    if State(usecase.state) is State.retired:
        raise Conflict(f"use case '{spec.name}' is retired and can no longer change")
    if spec.digest() == usecase.spec_digest:
        return detail(usecase)
    members = members_by_role(usecase)
    duties.check_membership(members, spec)
    duties.check_changes(acting.name, roles_of(session, acting, usecase), spec_of(usecase), spec, members)
    before = {"spec_digest": usecase.spec_digest}
    usecase.spec, usecase.spec_digest, usecase.title = spec.model_dump(mode="json"), spec.digest(), spec.title
    session.flush()
    audit.record(session, acting.name, "usecase.update", "usecase", spec.name, usecase=spec.name,
                 before=before, after={"spec_digest": usecase.spec_digest})
    privacy.reopen_if_changed(session, acting.name, usecase)
    return detail(usecase)


def set_state(session: Session, actor: str, usecase: UseCase, target: State, reason: str | None) -> None:
    """Move the use case and audit it; callers have checked the transition and the permission."""
    before = {"state": usecase.state, "cycle": usecase.cycles[-1].number if usecase.cycles else None}
    current = State(usecase.state)
    reviewed = None  # the review sees, and the audit keeps, what the cycle earned
    if usecase.cycles and State.in_review in (current, target):
        reviewed = cycle_value(spec_of(usecase), usecase.cycles[-1].number, usecase.cycles[-1].kpi_outcomes)
    if target is State.in_development:
        if current is State.in_review:
            _close_cycle(usecase, actor, "next_cycle", reason)
        usecase.cycles.append(Cycle(number=len(usecase.cycles) + 1, kpi_outcomes={}))
    elif target is State.retired and current is State.in_review:
        _close_cycle(usecase, actor, "retire", reason)
    usecase.state, usecase.state_reason = target, reason
    session.flush()
    audit.record(session, actor, "usecase.advance", "usecase", usecase.name, usecase=usecase.name,
                 before=before,
                 after={"state": target, "reason": reason,
                        "cycle": usecase.cycles[-1].number if usecase.cycles else None}
                 | ({"value": reviewed.model_dump()} if reviewed else {}))


def _close_cycle(usecase: UseCase, actor: str, decision: str, comment: str | None) -> None:
    cycle = usecase.cycles[-1]
    cycle.ended_at, cycle.decision, cycle.decision_comment, cycle.decided_by = (
        utcnow(), decision, comment, actor,
    )


def advance(
    session: Session, actor: str | None, name: str, target: State, reason: str | None = None
) -> UseCaseDetail:
    """Move a use case along its lifecycle, refusing illegal moves and closed gates."""
    from valueloop.outcomes.privacy import require_privacy_approval

    usecase = get_usecase(session, name, for_update=True)
    acting = get_user(session, actor)
    current = State(usecase.state)
    action = check_transition(current, target)
    if target in OWNED_BY_COMMAND:
        raise Conflict(f"{current} → {target} is made by `{OWNED_BY_COMMAND[target]}`")
    require(session, acting, action, usecase)
    if target is State.in_development:
        require_privacy_approval(session, usecase)
    if target is State.in_production:  # the AI Act's duties of a high-risk system, on its model card
        from valueloop.learn.modelcard import require_production_ready

        require_production_ready(session, usecase)
    if current is State.in_review and not (reason and reason.strip()):
        raise InvalidInput(
            "reason: the business decision at review needs a comment (why go on, or why retire)"
        )
    if target is State.draft and current is State.rejected and not usecase.state_reason:
        raise Conflict("a rejected use case returns to draft only with the rejection's reason")
    if current is State.rejected:
        reason = reason or usecase.state_reason  # back in draft, the team still sees why
    set_state(session, acting.name, usecase, target, reason)
    return detail(usecase)


def record_outcomes(
    session: Session, actor: str | None, name: str, values: dict[str, float]
) -> UseCaseDetail:
    """Record measured KPI values on the current cycle, judged against the use case's targets."""
    usecase = get_usecase(session, name, for_update=True)
    acting = get_user(session, actor)
    require(session, acting, Action.review, usecase)
    if not usecase.cycles:
        raise Conflict(f"use case '{name}' has no cycle yet: outcomes are recorded from in_development on")
    kpis = {k.name: k for k in spec_of(usecase).kpis}
    unknown = sorted(set(values) - set(kpis))
    if unknown:
        raise InvalidInput(
            f"kpi: unknown KPI(s) {', '.join(unknown)}; declared: {', '.join(kpis) or 'none'}"
        )
    cycle = usecase.cycles[-1]
    before = dict(cycle.kpi_outcomes)
    outcomes = dict(cycle.kpi_outcomes)
    for key, value in values.items():
        outcomes[key] = KpiOutcome(value=value, target=str(kpis[key]), met=kpis[key].met_by(value)).model_dump()
    cycle.kpi_outcomes = outcomes
    audit.record(session, acting.name, "cycle.outcomes", "cycle", f"{name}#{cycle.number}",
                 usecase=name, before=before, after=outcomes)
    return detail(usecase)


def add_member(session: Session, actor: str | None, name: str, user: str, role: Role) -> list[MemberView]:
    usecase = get_usecase(session, name)
    acting = get_user(session, actor)
    require(session, acting, Action.manage_members, usecase)
    if role is Role.admin:
        raise InvalidInput("role: admin is a user flag (`valueloop users add --admin`), not a membership")
    if role is Role.privacy_officer:
        raise InvalidInput("role: privacy_officer: privacy officers are appointed by the admin "
                           "(`valueloop users appoint NAME`), not added to a use case")
    member_user = get_user(session, user)
    if member_user.id == acting.id and acting.is_admin and Role.owner not in roles_of(session, acting, usecase):
        raise PermissionDenied(f"{acting.name} may not give their own account a role on use case '{name}': "
                               "the admin administers and decides nothing")
    _may_hold_a_role(member_user)
    if any(m.user_id == member_user.id and m.role == role for m in usecase.members):
        raise Conflict(f"{user} is already {role} of '{name}'")
    usecase.members.append(Member(user_id=member_user.id, role=role))
    session.flush()
    _members_into_file(usecase)
    audit.record(session, acting.name, "member.add", "member", f"{user}:{role}", usecase=name,
                 after={"user": user, "role": role})
    return view(usecase).members


def remove_member(session: Session, actor: str | None, name: str, user: str, role: Role) -> list[MemberView]:
    usecase = get_usecase(session, name)
    acting = get_user(session, actor)
    require(session, acting, Action.manage_members, usecase)
    member = next((m for m in usecase.members if m.user.name == user and m.role == role), None)
    if member is None:
        raise NotFound(f"{user} is not {role} of '{name}'")
    if role is Role.owner and sum(m.role == Role.owner for m in usecase.members) == 1:
        raise Conflict(f"'{name}' must keep an owner; add the new owner before removing {user}")
    usecase.members.remove(member)
    session.flush()
    _members_into_file(usecase)
    audit.record(session, acting.name, "member.remove", "member", f"{user}:{role}", usecase=name,
                 before={"user": user, "role": role})
    return view(usecase).members
