"""The Outcomes side of the console, one journey per role in a real browser, and its refusals:
an action not offered, a forged POST, a stale form, and input refused with the CLI's words."""

from __future__ import annotations

import httpx
import pytest
from console_support import Console, Visit, example_yaml
from playwright.sync_api import Page

from valueloop.errors import InvalidInput
from valueloop.outcomes.spec import parse_spec, parse_yaml


def _twin(visit: Visit, path: str) -> dict:
    """The JSON twin of a page, fetched with the tab's session."""
    response = visit.page.request.get(visit.url + path + ".json")
    assert response.status == 200, response.text()
    return response.json()


def _cli_problems(text: str) -> list[str]:
    """What the CLI says of this use case file (``valueloop usecase create`` reads it the same)."""
    with pytest.raises(InvalidInput) as refused:
        parse_spec(parse_yaml(text.encode(), "valueloop.yaml"), "valueloop.yaml")
    return refused.value.problems


def test_the_analyst_formulates_and_submits(console: Console) -> None:
    visit = console.sign_in("ana", "analyst")
    page = visit.page
    visit.shot("inbox")
    page.get_by_role("button", name="New use case").first.click()
    visit.shot("new-usecase")

    broken = example_yaml("upsell", "Offer the right upgrade").replace("target: 0.08", "target: eight percent")
    page.get_by_label("The use case file (YAML)").fill(broken)
    with visit.expecting(422):
        page.get_by_role("button", name="Create the use case").click()
        page.locator("#spec-problem").wait_for()
    visit.shot("new-usecase-refused")
    shown = page.locator("#spec-problem").inner_text()
    for problem in _cli_problems(broken):
        assert problem in shown  # the CLI's words, next to the field
    assert page.get_by_label("The use case file (YAML)").get_attribute("aria-invalid") == "true"

    page.get_by_label("The use case file (YAML)").fill(example_yaml("upsell", "Offer the right upgrade"))
    page.get_by_role("button", name="Create the use case").click()
    page.wait_for_url(console.url + "/usecases/upsell")
    visit.shot("draft")
    assert page.locator(".badge.state-draft").first.is_visible()

    page.get_by_label("Comment on your decision").fill("goal, KPIs and sources agreed with olivia")
    page.get_by_role("button", name="Mark formulated").click()
    page.wait_for_url(console.url + "/usecases/upsell")
    visit.shot("formulated")
    page.get_by_role("button", name="Submit the DPIA").click()
    page.wait_for_url(console.url + "/usecases/upsell/privacy")
    visit.shot("submitted")
    assert _twin(visit, "/usecases/upsell/privacy")["versions"][-1]["status"] == "pending"
    assert _twin(visit, "/usecases/upsell")["usecase"]["state"] == "privacy_review"
    # the analyst decides nothing on the DPIA: no decision form is offered
    assert page.get_by_role("button", name="Approve").count() == 0


def test_the_privacy_officer_approves_with_a_condition(console: Console) -> None:
    visit = console.sign_in("pia", "privacy-officer")
    page = visit.page
    visit.shot("inbox")
    page.get_by_role("article", name="DPIAs to decide").get_by_role("link", name="churn").click()
    page.wait_for_url(console.url + "/usecases/churn/privacy")
    visit.shot("privacy")

    page.get_by_label("Condition on postcode").select_option("generalize")  # without its parameter
    with visit.expecting(422):
        page.get_by_role("button", name="Approve").click()
        page.locator("#postcode-problem").wait_for()
    visit.shot("condition-refused")
    assert "generalize of 'postcode' needs exactly one of" in page.locator("#postcode-problem").inner_text()
    assert _twin(visit, "/usecases/churn/privacy")["versions"][-1]["status"] == "pending"

    assert page.get_by_label("Condition on postcode").input_value() == "generalize"  # kept as chosen
    page.get_by_label("Condition on email").select_option("drop")
    page.get_by_label("Parameters for postcode").fill("prefix=1")
    page.get_by_label("Comment on the approval").fill("no e-mail at all; postcodes cut to one digit")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(console.url + "/usecases/churn/privacy")
    visit.shot("approved")
    twin = _twin(visit, "/usecases/churn/privacy")
    decided = twin["versions"][-1]
    assert decided["status"] == "approved" and decided["decided_by"] == "pia"
    assert {(c["column"], c["treatment"]) for c in decided["conditions"]} == {("email", "drop"),
                                                                             ("postcode", "generalize")}
    assert twin["usecase"]["state"] == "approved"
    assert page.get_by_role("button", name="Approve").count() == 0  # decided: nothing left to offer


def test_the_owner_records_a_kpi_and_moves_the_use_case_to_review(console: Console) -> None:
    visit = console.sign_in("olivia", "owner")
    page = visit.page
    visit.shot("inbox")
    visit.follow("Retention offers", "/usecases/retention", "usecase")

    page.get_by_label("Measured churn_rate").fill("seven")
    with visit.expecting(422):
        page.get_by_role("button", name="Record the KPI values").click()
        page.locator("#churn_rate-problem").wait_for()
    visit.shot("kpi-refused")
    assert "churn_rate: expected a number, got 'seven'" in page.locator("#churn_rate-problem").inner_text()

    page.get_by_label("Measured churn_rate").fill("0.071")
    page.get_by_role("button", name="Record the KPI values").click()
    page.wait_for_url(console.url + "/usecases/retention")
    visit.shot("kpi-recorded")
    outcome = _twin(visit, "/usecases/retention")["usecase"]["cycles"][-1]["kpi_outcomes"]["churn_rate"]
    assert outcome["value"] == 0.071 and outcome["met"] is True

    page.get_by_label("Comment on your decision").fill("churn below target after one cycle: review it")
    page.get_by_role("button", name="Move to review").click()
    page.wait_for_url(console.url + "/usecases/retention")
    visit.shot("in-review")
    assert _twin(visit, "/usecases/retention")["usecase"]["state"] == "in_review"
    # at review the owner decides the next cycle or retirement, with a comment
    assert page.get_by_role("button", name="Start development").is_visible()
    assert page.get_by_role("button", name="Retire").is_visible()


def test_a_forged_decision_is_refused_naming_the_role_and_changes_nothing(console: Console) -> None:
    visit = console.sign_in("ana", "forged")
    page = visit.page
    visit.shot("inbox")
    visit.goto("/usecases/churn/privacy", "privacy-without-decision")
    assert page.get_by_role("button", name="Approve").count() == 0  # not offered to her
    twin = _twin(visit, "/usecases/churn/privacy")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    # a valid session, token and version: only the role is missing
    with visit.expecting(403):
        page.evaluate("""([csrf, etag]) => {
            const form = document.createElement('form');
            form.method = 'post'; form.action = '/usecases/churn/privacy/approve';
            for (const [name, value] of [['csrf', csrf], ['etag', etag]]) {
                const input = document.createElement('input');
                input.type = 'hidden'; input.name = name; input.value = value; form.appendChild(input);
            }
            document.body.appendChild(form); form.submit();
        }""", [csrf, twin["etag"]])
        page.wait_for_url(console.url + "/usecases/churn/privacy/approve")
        page.get_by_role("heading", name="Forbidden").wait_for()
    visit.shot("forbidden")
    assert "requires role privacy_officer" in page.locator(".message").inner_text()
    _keeps_the_navigation(page, "ana")
    assert _twin(visit, "/usecases/churn/privacy") == twin  # nothing changed

    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    without_token = httpx.post(console.url + "/usecases/churn/advance", cookies=cookies,
                               data={"state": "draft", "etag": _twin(visit, "/usecases/churn")["etag"]})
    assert without_token.status_code == 403 and "csrf" in without_token.text
    assert _twin(visit, "/usecases/churn/privacy") == twin


def _keeps_the_navigation(page: Page, user: str) -> None:
    """A refusal page is still the console: its navigation, signed in as ``user``."""
    main = page.get_by_role("navigation", name="Main")
    for link in ("Inbox", "Use cases", "Audit"):
        assert main.get_by_role("link", name=link, exact=True).is_visible(), link
    assert main.get_by_role("button", name=f"Sign out {user}").is_visible()


def test_a_page_that_does_not_exist_keeps_the_navigation(console: Console) -> None:
    visit = console.sign_in("olivia", "not-found")
    visit.shot("inbox")
    with visit.expecting(404):
        page = visit.goto("/usecases/nope", "unknown-usecase")
    assert "use case 'nope' does not exist" in page.locator(".message").inner_text()
    _keeps_the_navigation(page, "olivia")
    with visit.expecting(404):
        page = visit.goto("/no/such/page", "unknown-page")
    assert "no page at /no/such/page" in page.locator(".message").inner_text()
    _keeps_the_navigation(page, "olivia")


def test_a_stale_form_is_refused_and_changes_nothing(console: Console) -> None:
    visit = console.sign_in("olivia", "stale")
    visit.shot("inbox")
    first = visit.page
    visit.goto("/usecases/retention", "usecase")
    # the same person in a second tab, loaded at the same time
    other = Visit(first.context.new_page(), console.url, "olivia", "stale-tab2")
    console.visits.append(other)
    other.goto("/usecases/retention", "usecase")

    first.get_by_label("Measured churn_rate").fill("0.09")
    first.get_by_role("button", name="Record the KPI values").click()
    first.wait_for_url(console.url + "/usecases/retention")
    visit.shot("recorded-in-first-tab")
    before = _twin(visit, "/usecases/retention")

    other.page.get_by_label("Comment on your decision").fill("looks good")
    with other.expecting(409):
        other.page.get_by_role("button", name="Move to review").click()
        other.page.get_by_role("heading", name="Conflict").wait_for()
    other.shot("stale-refused")
    assert "changed since you loaded the page" in other.page.locator(".message").inner_text()
    assert _twin(visit, "/usecases/retention") == before
