"""A use case's value: its expression checked at upload, and per cycle the intended value, the
value realized from the recorded business KPIs and the cost, the same by service, HTTP and CLI."""

from __future__ import annotations

import json

import pytest
from outcomes.support import churn_data, db_state
from server.conftest import server  # noqa: F401 - the real-uvicorn fixture of the API tests

from valueloop.errors import InvalidInput, PermissionDenied
from valueloop.operate.kpis import record_kpi
from valueloop.outcomes import audit, usecases, users
from valueloop.outcomes.lifecycle import State
from valueloop.outcomes.spec import parse_spec
from valueloop.outcomes.value import evaluate
from valueloop.store import session

# the example's constants, as the expected figures below spell them out
BASE, SUBSCRIBERS, MONTHS, MARGIN, PER_CALL, COST = 0.11, 50000.0, 3.0, 40.0, 5.0, 30000.0


def value_of(churn_rate: float, calls: float) -> float:
    return (BASE - churn_rate) * SUBSCRIBERS * MONTHS * (MARGIN - PER_CALL * calls)


def with_value(**changes: object) -> dict:
    data = churn_data()
    data["value"] = {**data["value"], **changes}
    return data


def refusal(data: dict) -> str:
    with pytest.raises(InvalidInput) as refused:
        parse_spec(data)
    return "\n".join(refused.value.problems)


def test_the_example_intends_its_expression_at_the_targets_exactly():
    spec = parse_spec(churn_data())
    assert spec.value is not None and spec.value.currency == "EUR" and spec.value.cost == COST
    assert evaluate(spec.value.expression, {"churn_rate": 0.08, "retention_calls": 4, **spec.value.constants}) \
        == value_of(0.08, 4) == 90000.0
    assert evaluate("2 ** 10 - 24 / 3 * -1", {}) == 1032.0


@pytest.mark.parametrize(("expression", "constants", "message"), [
    ("churn_rate * customers", {}, "value.expression: unknown name 'customers'; known: baseline_churn_rate, "
                                   "churn_rate, cost_per_call, monthly_margin, months, retention_calls, subscribers"),
    ("abs(churn_rate) * subscribers", {}, "value.expression: a function call (abs(churn_rate)) is not allowed"),
    ("__import__('os').getcwd()", {}, "value.expression: a function call (__import__('os').getcwd()) is not allowed"),
    ("churn_rate.real * subscribers", {}, "value.expression: attribute access (churn_rate.real) is not allowed"),
    ("subscribers ** 999999", {}, "value.expression: ** with exponent 999999 is beyond the limit of 64"),
    ("9 ** 9 ** 9", {}, "value.expression: ** with exponent 3.8742e+08 is beyond the limit of 64"),
    ("'churn' * 3", {}, "value.expression: 'churn' is not a number"),
    ("churn_rate > 0.5", {}, "value.expression: a comparison (churn_rate > 0.5) is not allowed"),
    ("subscribers / (months - 3)", {}, "value.expression: division by zero"),
    ("subscribers = 1", {}, "value.expression: not an expression (invalid syntax)"),
    ("1 + " * 200 + "1", {}, "value.expression: 801 characters, more than the limit of 500"),
    ("churn_rate * 2", {"churn_rate": 1}, "value.expression: constant(s) churn_rate shadow business KPI(s)"),
])
def test_a_bad_expression_is_refused_at_upload_naming_what_is_wrong(expression, constants, message):
    data = with_value(expression=expression)
    data["value"]["constants"].update(constants)
    assert message in refusal(data)


def test_bad_value_fields_are_refused_by_name():
    assert "value.constants.subscribers" in refusal(with_value(constants={"subscribers": "many"}))
    assert "value.currency" in refusal(with_value(currency="euros"))
    assert "value.cost" in refusal(with_value(cost=-1))
    assert "value.constants.Customers" in refusal(with_value(constants={"Customers": 1}))


def _reviewed_cycle_one(settings, approved_usecase) -> None:
    """Cycle 1 with both KPIs recorded (churn_rate twice: the newest counts), reviewed and
    decided; cycle 2 with churn_rate only."""
    approved_usecase(settings)
    with session(settings) as s:
        users.add_user(s, "admin", users.NewUser(name="mallory", email="mallory@example.com"))
        record_kpi(s, "olivia", "churn", "churn_rate", 0.1)
        record_kpi(s, "olivia", "churn", "churn_rate", 0.09)
        record_kpi(s, "ana", "churn", "retention_calls", 3.5)
        usecases.advance(s, "devon", "churn", State.in_production)
        usecases.advance(s, "olivia", "churn", State.in_review)
        usecases.advance(s, "olivia", "churn", State.in_development, "worth another quarter")
        record_kpi(s, "olivia", "churn", "churn_rate", 0.085)


def test_realized_value_per_cycle_from_the_recorded_kpis(db_settings, approved_usecase):
    _reviewed_cycle_one(db_settings, approved_usecase)
    with session(db_settings) as s:
        shown = usecases.show_value(s, "eve", "churn")
        review = audit.events(s, usecase="churn", action="usecase.advance")[-2:]
    first, second = shown.cycles
    assert (first.cycle, first.intended, first.realized, first.cost, first.net, first.missing) == \
        (1, 90000.0, value_of(0.09, 3.5), COST, value_of(0.09, 3.5) - COST, [])
    assert (second.cycle, second.realized, second.net, second.missing) == (2, None, None, ["retention_calls"])
    # the move into review and the decision keep what cycle 1 earned
    assert [e.after["state"] for e in review] == ["in_review", "in_development"]
    assert all(e.after["value"] == first.model_dump() for e in review)


def test_a_recorded_value_the_expression_cannot_use_is_reported_not_raised(db_settings, approved_usecase):
    approved_usecase(db_settings)
    data = with_value(expression="subscribers / retention_calls")
    with session(db_settings) as s:
        usecases.update_usecase(s, "olivia", parse_spec(data))
        record_kpi(s, "olivia", "churn", "retention_calls", 0)
        [cycle] = usecases.show_value(s, "olivia", "churn").cycles
    assert (cycle.realized, cycle.problem) == (None, "cannot be computed: division by zero")


def test_http_and_cli_agree_and_a_stranger_is_refused(db_settings, approved_usecase, server, run_cli):  # noqa: F811
    _reviewed_cycle_one(db_settings, approved_usecase)
    api = server(db_settings)
    answered = api("GET", "/api/usecases/churn/value", "eve")
    assert answered.status_code == 200, answered.text
    local = run_cli(db_settings, "usecase", "value", "churn", "--json", as_user="eve")
    remote = run_cli(db_settings, "usecase", "value", "churn", "--json",
                     env={"VALUELOOP_SERVER_URL": api.url, "VALUELOOP_TOKEN": api.tokens["eve"]})
    assert local.returncode == remote.returncode == 0, local.stderr + remote.stderr
    assert json.loads(local.stdout) == json.loads(remote.stdout) == answered.json()
    assert answered.json()["cycles"][0]["realized"] == value_of(0.09, 3.5)

    human = run_cli(db_settings, "usecase", "value", "churn", as_user="eve")
    assert human.returncode == 0 and "value per cycle (EUR)" in human.stdout and "90,000.00" in human.stdout
    assert "missing retention_calls" in human.stdout

    before = db_state(db_settings)
    for path in ("/api/usecases/churn", "/api/usecases/churn/value"):
        refused = api("GET", path, "mallory")
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["message"].startswith("mallory may not view on use case 'churn'")
    assert api("GET", "/api/usecases/fraud/value", "eve").status_code == 404
    with session(db_settings) as s, pytest.raises(PermissionDenied):
        usecases.show_value(s, "mallory", "churn")
    assert db_state(db_settings) == before


def test_the_review_decision_on_the_command_line_shows_the_figures(db_settings, approved_usecase, run_cli):
    approved_usecase(db_settings)
    with session(db_settings) as s:
        record_kpi(s, "olivia", "churn", "churn_rate", 0.09)
        record_kpi(s, "olivia", "churn", "retention_calls", 3.5)
        usecases.advance(s, "devon", "churn", State.in_production)
    into = run_cli(db_settings, "usecase", "advance", "churn", "in_review", as_user="olivia")
    decided = run_cli(db_settings, "usecase", "advance", "churn", "retired", "-m", "done", as_user="olivia")
    line = f"cycle 1 value in EUR: intended 90,000.00, realized {value_of(0.09, 3.5):,.2f}, cost 30,000.00"
    assert into.returncode == decided.returncode == 0, into.stderr + decided.stderr
    assert line in into.stdout and line in decided.stdout
