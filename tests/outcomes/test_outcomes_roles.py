"""Roles, members and the permission matrix, enforced on the service layer."""

from __future__ import annotations

import pytest
from outcomes.support import add_people, churn_spec, db_state, formulated

from valueloop.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound, PermissionDenied
from valueloop.outcomes import usecases
from valueloop.outcomes.roles import Action, Role, require
from valueloop.outcomes.users import get_user
from valueloop.store import session

#: who may do what, as the issue and DESIGN.md state it
EXPECTED = {
    Action.view: set(Role),
    Action.formulate: {Role.owner, Role.analyst},
    Action.submit_privacy: {Role.owner, Role.analyst},
    Action.decide_privacy: {Role.privacy_officer},
    Action.start_development: {Role.owner},
    Action.ingest: {Role.data_engineer},
    Action.train: {Role.data_scientist},
    Action.accept_model: {Role.owner},
    Action.sign_model_card: {Role.owner},
    Action.promote: {Role.data_scientist, Role.operations},
    Action.deploy: {Role.developer, Role.operations},
    Action.operate: {Role.operations},
    Action.label: {Role.analyst, Role.expert, Role.developer, Role.operations},
    Action.manage_labels: {Role.data_scientist, Role.operations},
    Action.enforce_retention: {Role.privacy_officer, Role.operations},
    Action.erase: {Role.privacy_officer},
    Action.review: {Role.owner, Role.analyst},
    Action.decide_cycle: {Role.owner, Role.sponsor},
    Action.manage_members: {Role.owner, Role.admin},
    Action.administer: {Role.admin},
}


def test_every_action_is_allowed_exactly_to_its_roles(db_settings):
    """One user per role on churn, none on a second use case: the matrix holds per use case."""
    formulated(db_settings)
    people = {Role.owner: "olivia", Role.sponsor: "sam", Role.analyst: "ana", Role.expert: "eve",
              Role.data_engineer: "dave", Role.data_scientist: "dana", Role.developer: "devon",
              Role.privacy_officer: "pia", Role.operations: "oscar", Role.admin: "admin"}
    with session(db_settings) as s:
        usecases.create_usecase(s, "olivia", churn_spec(
            name="fraud", sponsor=None, members={"analyst": ["ana"]}))
    allowed: dict[Action, set[Role]] = {}
    with session(db_settings) as s:
        churn, fraud = usecases.get_usecase(s, "churn"), usecases.get_usecase(s, "fraud")
        for action in Action:
            allowed[action] = set()
            for role, name in people.items():
                user = get_user(s, name)
                try:
                    require(s, user, action, churn)
                except PermissionDenied as refused:
                    assert "requires role" in str(refused) and f"{name} has {role}" in str(refused)
                else:
                    allowed[action].add(role)
            for name in ("eve", "dave", "dana", "devon", "oscar"):  # members of churn only
                if action is not Action.administer:
                    with pytest.raises(PermissionDenied, match=f"{name} has no role"):
                        require(s, get_user(s, name), action, fraud)
    assert set(EXPECTED) == set(Action)  # a new action needs its expected roles here
    assert allowed == EXPECTED


def test_only_the_owner_or_an_analyst_named_in_the_file_formulates(db_settings):
    add_people(db_settings)
    before = db_state(db_settings)
    cases = [
        ("dana", PermissionDenied, "dana may not formulate use case 'churn': requires role owner or "
                                   "analyst in the file; those are ana, olivia"),
        ("nobody", AuthenticationFailed, "unknown user 'nobody'; known users: admin, ana, dana"),
        (None, AuthenticationFailed, "no acting user: pass --as USER or set VALUELOOP_USER"),
    ]
    for actor, error, message in cases:
        with pytest.raises(error) as refused, session(db_settings) as s:
            usecases.create_usecase(s, actor, churn_spec())
        assert message in str(refused.value)
    with pytest.raises(InvalidInput, match="names unknown user\\(s\\): ghost, zoe; add them first"):
        with session(db_settings) as s:
            usecases.create_usecase(s, "olivia", churn_spec(members={"analyst": ["zoe"],
                                                                      "expert": ["ghost"]}))
    assert db_state(db_settings) == before

    with session(db_settings) as s:
        usecases.create_usecase(s, "ana", churn_spec())
    before = db_state(db_settings)
    with pytest.raises(Conflict, match="use case 'churn' already exists"), session(db_settings) as s:
        usecases.create_usecase(s, "olivia", churn_spec())
    with pytest.raises(NotFound, match="use case 'fraud' does not exist; `valueloop usecase list` shows yours"):
        with session(db_settings) as s:
            usecases.advance(s, "olivia", "fraud", "formulated")
    assert db_state(db_settings) == before


def test_members_are_managed_by_the_owner_or_an_admin(db_settings):
    formulated(db_settings)
    with session(db_settings) as s:
        members = usecases.add_member(s, "olivia", "churn", "eve", Role.data_scientist)
        assert {"user": "eve", "role": "data_scientist"} in [m.model_dump() for m in members]
        usecases.remove_member(s, "admin", "churn", "eve", Role.data_scientist)
        usecases.add_member(s, "admin", "churn", "dana", Role.owner)
    before = db_state(db_settings)
    refusals = [
        (lambda s: usecases.add_member(s, "ana", "churn", "eve", Role.owner), PermissionDenied,
         "ana may not manage members on use case 'churn': requires role admin or owner; ana has analyst"),
        (lambda s: usecases.add_member(s, "olivia", "churn", "eve", Role.admin), InvalidInput,
         "role: admin is a user flag"),
        (lambda s: usecases.add_member(s, "olivia", "churn", "dave", Role.data_engineer), Conflict,
         "dave is already data_engineer of 'churn'"),
        (lambda s: usecases.add_member(s, "olivia", "churn", "zoe", Role.expert), AuthenticationFailed,
         "unknown user 'zoe'"),
        (lambda s: usecases.remove_member(s, "olivia", "churn", "eve", Role.owner), NotFound,
         "eve is not owner of 'churn'"),
    ]
    for act, error, message in refusals:
        with pytest.raises(error, match=message), session(db_settings) as s:
            act(s)
    with session(db_settings) as s:
        usecases.remove_member(s, "olivia", "churn", "olivia", Role.owner)
    with pytest.raises(Conflict, match="'churn' must keep an owner"), session(db_settings) as s:
        usecases.remove_member(s, "dana", "churn", "dana", Role.owner)
    assert len(db_state(db_settings)["audit_events"]) == len(before["audit_events"]) + 1
