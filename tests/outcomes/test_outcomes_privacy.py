"""The DPIA and its gate on the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from outcomes.support import churn_data, churn_spec, db_state, formulated, with_phone

from valueloop.errors import Conflict, GateClosed, InvalidInput, PermissionDenied
from valueloop.outcomes import audit, privacy, usecases
from valueloop.outcomes.lifecycle import State
from valueloop.outcomes.spec import ColumnTreatment, parse_spec
from valueloop.store import session

POSTCODE = ColumnTreatment(column="postcode", treatment="generalize", params={"prefix": 2})


def test_a_data_scientist_may_not_decide_the_dpia(db_settings):
    formulated(db_settings, submitted=True)
    before = db_state(db_settings)
    with pytest.raises(PermissionDenied) as refused, session(db_settings) as s:
        privacy.approve(s, "dana", "churn", [POSTCODE])
    assert "dana may not decide privacy on use case 'churn'" in str(refused.value)
    assert "requires role privacy_officer; dana has data_scientist" in str(refused.value)
    with pytest.raises(PermissionDenied, match="requires role privacy_officer"), session(db_settings) as s:
        privacy.reject(s, "dana", "churn", "no")
    assert db_state(db_settings) == before


def test_an_admin_may_not_decide_the_dpia_either(db_settings):
    """Segregation of duties: administering valueloop is not deciding on privacy."""
    formulated(db_settings, submitted=True)
    with pytest.raises(PermissionDenied, match="admin may not decide privacy.*requires role privacy_officer"):
        with session(db_settings) as s:
            privacy.approve(s, "admin", "churn")


def test_the_privacy_officer_approves_with_a_condition(db_settings):
    formulated(db_settings, submitted=True)
    with session(db_settings) as s:
        approved = privacy.approve(s, "pia", "churn", [POSTCODE], "postcodes to their region")
    assert (approved.version, approved.status, approved.decided_by) == (1, "approved", "pia")
    with session(db_settings) as s:
        gate = privacy.require_privacy_approval(s, "churn")
        assert usecases.get_usecase(s, "churn").state == State.approved
    assert gate.version == 1
    # the officer's condition overrides the team's proposal (keep); the rest stays as proposed
    assert {c: (t.treatment.value, t.params) for c, t in gate.treatments.items()} == {
        "name": ("drop", {}),
        "email": ("pseudonymize", {}),
        "birth_date": ("generalize", {"to": "year"}),
        "postcode": ("generalize", {"prefix": 2}),
    }


def test_the_gate_is_closed_until_the_officer_decides(db_settings):
    formulated(db_settings)
    with pytest.raises(GateClosed, match="has no DPIA: submit one"), session(db_settings) as s:
        privacy.require_privacy_approval(s, "churn")
    with session(db_settings) as s:
        privacy.submit(s, "olivia", "churn")
    with pytest.raises(GateClosed, match="DPIA v1 of 'churn' awaits the privacy officer's decision"):
        with session(db_settings) as s:
            privacy.require_privacy_approval(s, "churn")
    with pytest.raises(Conflict, match="illegal transition privacy_review → in_development"):
        with session(db_settings) as s:
            usecases.advance(s, "olivia", "churn", State.in_development)


def test_a_changed_personal_column_needs_a_new_decision(db_settings, approved_usecase):
    approved_usecase(db_settings)
    with session(db_settings) as s:
        approved = privacy.require_privacy_approval(s, "churn").version
        usecases.update_usecase(s, "ana", with_phone())
    with pytest.raises(GateClosed) as closed, session(db_settings) as s:
        privacy.require_privacy_approval(s, "churn")
    assert f"DPIA v{approved + 1} of 'churn' awaits the privacy officer's decision (added phone)" in str(closed.value)

    with session(db_settings) as s:
        privacy.approve(s, "pia", "churn", [POSTCODE])
    with session(db_settings) as s:
        gate = privacy.require_privacy_approval(s, "churn")
    assert gate.version == approved + 1
    assert gate.treatments["phone"].treatment == "pseudonymize"
    assert gate.treatments["postcode"].params == {"prefix": 2}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda cols: cols.pop(0), "removed name"),
        (lambda cols: cols[1].update(treatment="drop"), "changed email"),
    ],
)
def test_the_gate_names_what_changed(settings, approved_usecase, change, named):
    approved_usecase(settings)
    data = churn_data()
    change(data["privacy"]["columns"])
    with session(settings) as s:
        usecases.update_usecase(s, "ana", parse_spec(data))
    with pytest.raises(GateClosed, match=f"awaits the privacy officer's decision \\({named}\\)"):
        with session(settings) as s:
            privacy.require_privacy_approval(s, "churn")


def test_a_change_outside_the_privacy_section_keeps_the_gate_open(db_settings, approved_usecase):
    approved_usecase(db_settings)
    with session(db_settings) as s:
        approved = privacy.require_privacy_approval(s, "churn").version
        usecases.update_usecase(s, "ana", churn_spec(title="Predict churn, cycle two"))
    with session(db_settings) as s:
        assert privacy.require_privacy_approval(s, "churn").version == approved
        assert usecases.get_usecase(s, "churn").title == "Predict churn, cycle two"


def test_a_rejection_sends_the_use_case_back_with_its_reason(db_settings):
    formulated(db_settings, submitted=True)
    before = db_state(db_settings)
    with pytest.raises(InvalidInput, match="reason: a rejection must say why"), session(db_settings) as s:
        privacy.reject(s, "pia", "churn", "  ")
    assert db_state(db_settings) == before

    with session(db_settings) as s:
        privacy.reject(s, "pia", "churn", "postcode must not be kept")
    with session(db_settings) as s:
        usecase = usecases.get_usecase(s, "churn")
        assert (usecase.state, usecase.state_reason) == (State.rejected, "postcode must not be kept")
    with pytest.raises(GateClosed, match="DPIA v1 of 'churn' was rejected: postcode must not be kept"):
        with session(db_settings) as s:
            privacy.require_privacy_approval(s, "churn")

    # the team goes back to draft, adjusts the file, formulates and submits again
    data = churn_data()
    data["privacy"]["columns"][3].update(treatment="generalize", params={"prefix": 2}, justification="")
    with session(db_settings) as s:
        back = usecases.advance(s, "ana", "churn", State.draft)
        assert (back.state, back.state_reason) == (State.draft, "postcode must not be kept")
        usecases.update_usecase(s, "ana", parse_spec(data))
        usecases.advance(s, "ana", "churn", State.formulated)
        resubmitted = privacy.submit(s, "ana", "churn")
    assert (resubmitted.version, resubmitted.status) == (2, "pending")
    with session(db_settings) as s:
        privacy.approve(s, "pia", "churn")
        usecases.advance(s, "olivia", "churn", State.in_development)
        assert privacy.require_privacy_approval(s, "churn").version == 2


def test_a_file_edited_before_submission_does_not_strand_the_use_case(settings):
    """Edits while in draft are part of what gets submitted, not a DPIA version of their own."""
    formulated(settings, submitted=True)
    with session(settings) as s:
        privacy.reject(s, "pia", "churn", "say why the phone is needed")
    with pytest.raises(Conflict, match="'churn' is rejected: the DPIA is submitted from formulated"):
        with session(settings) as s:
            privacy.submit(s, "ana", "churn")
    with session(settings) as s:
        usecases.advance(s, "ana", "churn", State.draft)
        usecases.update_usecase(s, "ana", with_phone())
        usecases.advance(s, "ana", "churn", State.formulated)
        assert privacy.submit(s, "ana", "churn").version == 2
        privacy.approve(s, "pia", "churn")
        assert usecases.get_usecase(s, "churn").state == State.approved


def test_submitting_twice_or_deciding_nothing_is_refused(db_settings):
    formulated(db_settings)
    with pytest.raises(Conflict, match="no DPIA of 'churn' awaits a decision \\(none was submitted\\)"):
        with session(db_settings) as s:
            privacy.approve(s, "pia", "churn")
    with session(db_settings) as s:
        privacy.submit(s, "olivia", "churn")
    before = db_state(db_settings)
    with pytest.raises(Conflict, match="DPIA v1 of 'churn' with this content is already pending"):
        with session(db_settings) as s:
            privacy.submit(s, "ana", "churn")
    with pytest.raises(InvalidInput, match="conditions: one condition per column"), session(db_settings) as s:
        privacy.approve(s, "pia", "churn", [POSTCODE, POSTCODE])
    assert db_state(db_settings) == before


def test_the_audit_trail_shows_every_step_with_its_actor(db_settings, approved_usecase):
    approved_usecase(db_settings)
    with session(db_settings) as s:
        trail = [(e.actor, e.action, e.object_id) for e in audit.events(s, usecase="churn")]
    assert trail == [
        ("olivia", "usecase.create", "churn"),
        ("ana", "usecase.advance", "churn"),
        ("olivia", "privacy.submit", "churn/v1"),
        ("olivia", "usecase.advance", "churn"),
        ("pia", "privacy.approve", "churn/v1"),
        ("pia", "usecase.advance", "churn"),
        ("olivia", "usecase.advance", "churn"),
        ("ana", "usecase.update", "churn"),
        ("ana", "privacy.reopen", "churn/v2"),
        ("ana", "usecase.update", "churn"),
        ("ana", "privacy.reopen", "churn/v3"),
        ("pia", "privacy.approve", "churn/v3"),
    ]
    with session(db_settings) as s:
        approval = audit.events(s, usecase="churn", action="privacy.approve")[0]
        states = [e.after["state"] for e in audit.events(s, usecase="churn", action="usecase.advance")]
    assert approval.before == {"status": "pending"}
    assert approval.after["conditions"] == [
        {"column": "postcode", "treatment": "generalize", "params": {"prefix": 2}, "justification": ""}
    ]
    assert states == ["formulated", "privacy_review", "approved", "in_development"]
