"""The use case lifecycle and its cycles on the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from outcomes.support import db_state, formulated

from valueloop.errors import Conflict, InvalidInput, PermissionDenied
from valueloop.outcomes import usecases
from valueloop.outcomes.lifecycle import TRANSITIONS, State, check_transition
from valueloop.store import session

#: the lifecycle as the issue states it
LOOP = [
    ("draft", "formulated"), ("formulated", "privacy_review"), ("privacy_review", "approved"),
    ("privacy_review", "rejected"), ("rejected", "draft"), ("approved", "in_development"),
    ("in_development", "in_production"), ("in_production", "in_review"),
    ("in_review", "in_development"), ("in_review", "retired"),
]


def test_the_state_machine_has_every_transition_of_the_loop():
    assert set(LOOP) <= {(a.value, b.value) for a, b in TRANSITIONS}
    for state in State:
        for target in State:
            if (state, target) not in TRANSITIONS:
                with pytest.raises(Conflict, match=f"illegal transition {state} → {target}"):
                    check_transition(state, target)


def test_an_illegal_transition_is_refused_naming_the_allowed_ones(db_settings):
    formulated(db_settings)
    before = db_state(db_settings)
    with pytest.raises(Conflict) as refused, session(db_settings) as s:
        usecases.advance(s, "olivia", "churn", State.in_production)
    assert str(refused.value) == (
        "illegal transition formulated → in_production; "
        "from formulated the allowed next states are: draft, privacy_review"
    )
    with pytest.raises(Conflict, match="formulated → privacy_review is made by `valueloop privacy submit`"):
        with session(db_settings) as s:
            usecases.advance(s, "olivia", "churn", State.privacy_review)
    with pytest.raises(PermissionDenied, match="dave may not formulate.*requires role analyst or owner"):
        with session(db_settings) as s:
            usecases.advance(s, "dave", "churn", State.draft)
    assert db_state(db_settings) == before


def test_cycles_record_kpi_outcomes_and_the_review_decision(db_settings, approved_usecase):
    approved_usecase(db_settings)
    with session(db_settings) as s:
        assert usecases.get_usecase(s, "churn").state == State.in_development
        usecases.advance(s, "devon", "churn", State.in_production)
        usecases.advance(s, "ana", "churn", State.in_review)
        usecases.record_outcomes(s, "ana", "churn", {"churn_rate": 0.09, "recall": 0.74})
        usecases.record_outcomes(s, "olivia", "churn", {"auc": 0.8})
    before = db_state(db_settings)
    with pytest.raises(InvalidInput, match="reason: the business decision at review needs a comment"):
        with session(db_settings) as s:
            usecases.advance(s, "olivia", "churn", State.in_development)
    with pytest.raises(PermissionDenied, match="dana may not decide cycle.*requires role owner or sponsor"):
        with session(db_settings) as s:
            usecases.advance(s, "dana", "churn", State.retired, "enough")
    with pytest.raises(InvalidInput, match="kpi: unknown KPI\\(s\\) profit; declared: churn_rate, "
                       "retention_calls, recall, auc"):
        with session(db_settings) as s:
            usecases.record_outcomes(s, "ana", "churn", {"profit": 1.0, "recall": 0.1})
    assert db_state(db_settings) == before

    with session(db_settings) as s:
        nxt = usecases.advance(s, "olivia", "churn", State.in_development, "recall is fine, churn not yet")
    assert (nxt.state, nxt.cycle) == (State.in_development, 2)
    first = nxt.cycles[0]
    assert (first.decision, first.decision_comment, first.decided_by) == (
        "next_cycle", "recall is fine, churn not yet", "olivia")
    assert first.ended_at is not None
    assert {k: (o.value, o.met, o.target) for k, o in first.kpi_outcomes.items()} == {
        "churn_rate": (0.09, False, "monthly_churn_rate < 0.08 ratio"),
        "recall": (0.74, True, "recall >= 0.7"),
        "auc": (0.8, True, "roc_auc >= 0.75"),
    }
    assert nxt.cycles[1].kpi_outcomes == {} and nxt.cycles[1].ended_at is None

    with session(db_settings) as s:
        usecases.advance(s, "oscar", "churn", State.in_production)
        usecases.advance(s, "olivia", "churn", State.in_review)
        usecases.record_outcomes(s, "olivia", "churn", {"churn_rate": 0.07})
        done = usecases.advance(s, "sam", "churn", State.retired, "target reached; fold into CRM")
    assert (done.state, done.cycle, done.next_states) == (State.retired, 2, [])
    assert (done.cycles[1].decision, done.cycles[1].decided_by) == ("retire", "sam")
    assert done.cycles[1].kpi_outcomes["churn_rate"].met is True
    with pytest.raises(Conflict, match="'churn' is retired and can no longer change"), session(db_settings) as s:
        usecases.update_usecase(s, "ana", usecases.spec_of(usecases.get_usecase(s, "churn")).model_copy(
            update={"title": "again"}))


def test_outcomes_need_a_cycle(settings):
    formulated(settings)
    with pytest.raises(Conflict, match="'churn' has no cycle yet"), session(settings) as s:
        usecases.record_outcomes(s, "olivia", "churn", {"recall": 0.5})
