"""Roles and the one permission matrix of valueloop.

Every state-changing service asks :func:`require` before it acts; nothing else decides who may
do what. Roles are held per use case (a :class:`~valueloop.store.models.Member`); ``admin`` is a
global flag on the user and administers users and tokens, but decides nothing in the loop;
``privacy_officer`` is a global appointment by the admin (see :func:`roles_of`): segregation of
duties keeps the DPIA decision with an officer who has no other stake in the use case.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy.orm import Session

from valueloop.errors import PermissionDenied
from valueloop.store.models import Member, UseCase, User


class Role(StrEnum):
    owner = "owner"
    sponsor = "sponsor"
    analyst = "analyst"
    expert = "expert"
    data_engineer = "data_engineer"
    data_scientist = "data_scientist"
    developer = "developer"
    privacy_officer = "privacy_officer"
    operations = "operations"
    admin = "admin"


class Action(StrEnum):
    view = "view"
    formulate = "formulate"
    submit_privacy = "submit_privacy"
    decide_privacy = "decide_privacy"
    start_development = "start_development"
    ingest = "ingest"
    train = "train"
    accept_model = "accept_model"
    sign_model_card = "sign_model_card"
    promote = "promote"
    deploy = "deploy"
    operate = "operate"
    label = "label"
    manage_labels = "manage_labels"
    enforce_retention = "enforce_retention"
    erase = "erase"
    review = "review"
    decide_cycle = "decide_cycle"
    manage_members = "manage_members"
    administer = "administer"


_EVERY_MEMBER = frozenset(Role)

PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.view: _EVERY_MEMBER,
    Action.formulate: frozenset({Role.owner, Role.analyst}),
    Action.submit_privacy: frozenset({Role.owner, Role.analyst}),
    Action.decide_privacy: frozenset({Role.privacy_officer}),
    Action.start_development: frozenset({Role.owner}),
    Action.ingest: frozenset({Role.data_engineer}),
    Action.train: frozenset({Role.data_scientist}),
    Action.accept_model: frozenset({Role.owner}),
    # the owner vouches for the technical documentation a high-risk system needs (AI Act Art. 11)
    Action.sign_model_card: frozenset({Role.owner}),
    Action.promote: frozenset({Role.data_scientist, Role.operations}),
    Action.deploy: frozenset({Role.developer, Role.operations}),
    Action.operate: frozenset({Role.operations}),
    # labels drive monitoring and retraining: only those who know the ground truth send them
    Action.label: frozenset({Role.analyst, Role.expert, Role.developer, Role.operations}),
    # correcting or withdrawing a stored label changes what the monitor and retraining learn from
    Action.manage_labels: frozenset({Role.data_scientist, Role.operations}),
    # deleting personal data past the DPIA's retention: the officer, or operations who run the platform
    Action.enforce_retention: frozenset({Role.privacy_officer, Role.operations}),
    # a data subject's erasure request (GDPR Art. 17) is the privacy officer's to carry out
    Action.erase: frozenset({Role.privacy_officer}),
    Action.review: frozenset({Role.owner, Role.analyst}),
    Action.decide_cycle: frozenset({Role.owner, Role.sponsor}),
    Action.manage_members: frozenset({Role.owner, Role.admin}),
    Action.administer: frozenset({Role.admin}),
}


#: the roles an automated principal holds on a use case whose file has an ``operate`` section:
#: the standing authorization of that policy, whose powers only their owners set (outcomes/duties.py)
STANDING: dict[str, frozenset[Role]] = {
    "policy:schedule": frozenset({Role.operations}),
    "policy:retrain": frozenset({Role.owner, Role.data_engineer, Role.data_scientist, Role.operations}),
    "policy:retention": frozenset({Role.operations}),
}
#: the section of the use case file that grants a policy its standing roles: retention carries out
#: the DPIA's ``privacy`` section, the other policies the ``operate`` one
GRANTED_BY: dict[str, str] = {"policy:retention": "privacy"}


def roles_of(session: Session, user: User, usecase: UseCase | None) -> set[Role]:
    """The user's roles on the use case. An appointed privacy officer is the privacy officer of
    every use case on which they hold no other role: nobody decides on their own work."""
    roles = {Role.admin} if user.is_admin else set()
    if usecase is None:
        return roles
    if user.is_system:
        granted = usecase.spec.get(GRANTED_BY.get(user.name, "operate"))
        return set(STANDING.get(user.name, ())) if granted else set()
    rows = session.query(Member.role).filter_by(usecase_id=usecase.id, user_id=user.id)
    held = {Role(r) for (r,) in rows}
    if user.is_privacy_officer and not held:
        held = {Role.privacy_officer}
    return roles | held


def allows(session: Session, user: User, action: Action, usecase: UseCase | None = None) -> bool:
    """Whether :func:`require` would let the user act: the console offers only these actions."""
    return bool(roles_of(session, user, usecase) & PERMISSIONS[action])


def require(session: Session, user: User, action: Action, usecase: UseCase | None = None) -> None:
    """Raise :class:`PermissionDenied` naming the roles that would be allowed."""
    if allows(session, user, action, usecase):
        return
    allowed, held = PERMISSIONS[action], roles_of(session, user, usecase)
    where = f" on use case '{usecase.name}'" if usecase is not None else ""
    has = ", ".join(sorted(held)) or "no role"
    needs = " or ".join(sorted(allowed))
    raise PermissionDenied(
        f"{user.name} may not {action.value.replace('_', ' ')}{where}: "
        f"requires role {needs}; {user.name} has {has}"
    )
