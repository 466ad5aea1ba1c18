"""The DPIA's AI-system assessment: its rules, the prohibited gate and a risk change reopening it."""

from __future__ import annotations

import pytest
from outcomes.support import churn_data, formulated

from valueloop.errors import GateClosed, InvalidInput
from valueloop.outcomes import privacy, usecases
from valueloop.outcomes.lifecycle import State
from valueloop.outcomes.spec import parse_spec
from valueloop.store import session


def _with_ai(**ai: object) -> dict:
    data = churn_data()
    data["privacy"]["ai"] = ai
    return data


@pytest.mark.parametrize(("ai", "message"), [
    ({"risk": "high", "log_retention": "365d"}, "privacy.ai: risk high needs annex_iii"),
    ({"risk": "high", "annex_iii": "employment", "log_retention": "30d"},
     "risk high needs log_retention of at least 180d (six months, AI Act Art. 26(6)); got 30d"),
    ({"risk": "limited"}, "risk limited needs transparency_notice"),
    ({"risk": "limited", "transparency_notice": "AI\r\nSet-Cookie: x=1"},
     "privacy.ai.transparency_notice: must be one line of text without control characters"),
    ({"risk": "minimal", "annex_iii": "employment"}, "annex_iii employment is a high-risk area"),
    ({"risk": "unacceptable"}, "privacy.ai.risk"),
])
def test_an_assessment_breaking_its_class_rules_is_refused(ai, message):
    with pytest.raises(InvalidInput) as refused:
        parse_spec(_with_ai(**ai))
    assert message in str(refused.value)


def test_the_churn_example_is_assessed_as_limited_risk():
    ai = parse_spec(churn_data()).privacy.ai
    assert ai is not None and ai.risk == "limited" and "AI system" in ai.transparency_notice


def test_a_prohibited_practice_cannot_be_approved(db_settings):
    formulated(db_settings)
    with session(db_settings) as s:
        usecases.update_usecase(s, "olivia", parse_spec(_with_ai(risk="prohibited")))
        privacy.submit(s, "olivia", "churn")
    with pytest.raises(GateClosed, match="privacy.ai.risk is prohibited.*cannot be approved"):
        with session(db_settings) as s:
            privacy.approve(s, "pia", "churn")
    with session(db_settings) as s:
        assert usecases.get_usecase(s, "churn").state == State.privacy_review
        privacy.reject(s, "pia", "churn", "social scoring is prohibited")


def test_a_changed_risk_class_needs_a_new_decision(settings, approved_usecase):
    approved_usecase(settings)
    data = _with_ai(risk="high", annex_iii="essential_services", log_retention="365d")
    with session(settings) as s:
        approved = privacy.require_privacy_approval(s, "churn").version
        usecases.update_usecase(s, "ana", parse_spec(data))
    with pytest.raises(GateClosed) as closed, session(settings) as s:
        privacy.require_privacy_approval(s, "churn")
    assert (f"DPIA v{approved + 1} of 'churn' awaits the privacy officer's decision "
            "(AI risk class limited → high)") in str(closed.value)


def test_a_high_risk_use_case_names_every_duty_missing_before_production(settings, approved_usecase):
    """No oversight named, logs that cannot outlive the personal columns they hold (730d), no
    champion: the move to production is refused, naming each; nothing moves."""
    approved_usecase(settings)
    data = _with_ai(risk="high", annex_iii="employment", log_retention="1000d")
    with session(settings) as s:
        usecases.update_usecase(s, "ana", parse_spec(data))
    with pytest.raises(GateClosed, match="DPIA v.* awaits the privacy officer's decision"):
        with session(settings) as s:
            usecases.advance(s, "devon", "churn", State.in_production)
    with session(settings) as s:
        privacy.approve(s, "pia", "churn", comment="employment screening is Annex III")
    with pytest.raises(GateClosed) as closed, session(settings) as s:
        usecases.advance(s, "devon", "churn", State.in_production)
    assert str(closed.value) == (
        "use case 'churn' is high-risk AI (Annex III: employment) and cannot enter in_production: "
        "privacy.ai.oversight does not name who can override or stop predictions, and how; the prediction "
        "log holds personal column(s) birth_date, email, postcode, whose declared retention (730d, 730d, 730d) "
        "is shorter than the 1000d the officer set for logs (privacy.ai.log_retention); no model version is "
        "champion")
    with session(settings) as s:
        assert usecases.get_usecase(s, "churn").state == State.in_development
