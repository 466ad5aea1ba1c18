"""The use case lifecycle as a state machine, with the action each transition needs.

``draft → formulated → privacy_review → approved | rejected (→ draft) → in_development →
in_production → in_review → in_development (the next cycle) | retired``
"""

from __future__ import annotations

from enum import StrEnum

from valueloop.errors import Conflict
from valueloop.outcomes.roles import Action


class State(StrEnum):
    draft = "draft"
    formulated = "formulated"
    privacy_review = "privacy_review"
    approved = "approved"
    rejected = "rejected"
    in_development = "in_development"
    in_production = "in_production"
    in_review = "in_review"
    retired = "retired"


#: (from, to) -> the action that permits it
TRANSITIONS: dict[tuple[State, State], Action] = {
    (State.draft, State.formulated): Action.formulate,
    (State.formulated, State.draft): Action.formulate,
    (State.formulated, State.privacy_review): Action.submit_privacy,
    (State.privacy_review, State.approved): Action.decide_privacy,
    (State.privacy_review, State.rejected): Action.decide_privacy,
    (State.rejected, State.draft): Action.formulate,
    (State.approved, State.in_development): Action.start_development,
    (State.in_development, State.in_production): Action.deploy,
    (State.in_production, State.in_review): Action.review,
    (State.in_review, State.in_development): Action.decide_cycle,
    (State.in_review, State.retired): Action.decide_cycle,
    (State.draft, State.retired): Action.decide_cycle,
}

#: transitions that only a dedicated command may make, and which one
OWNED_BY_COMMAND: dict[State, str] = {
    State.privacy_review: "valueloop privacy submit",
    State.approved: "valueloop privacy approve",
    State.rejected: "valueloop privacy reject",
}


def allowed_from(state: State) -> list[State]:
    return [to for (frm, to) in TRANSITIONS if frm is state]


def check_transition(current: State, target: State) -> Action:
    """Return the action the transition needs, or refuse it naming the allowed targets."""
    action = TRANSITIONS.get((current, target))
    if action is None:
        allowed = ", ".join(allowed_from(current)) or "none (final state)"
        raise Conflict(
            f"illegal transition {current} → {target}; from {current} the allowed next states are: {allowed}"
        )
    return action
