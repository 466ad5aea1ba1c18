"""The stream consumer's batch parser: a batch parses as a whole only when every event is one
object of the signature's features, present, not null and of the right kind; anything else
makes the consumer examine the events one by one (and dead-letter the bad ones)."""

from __future__ import annotations

import pytest

from valueloop.deploy.scoring import Feature, Scorer

SCORER = Scorer(usecase="churn", version="1", estimator=None, wants_frame=False,
                features=(Feature("tenure", "number", "double"), Feature("plan", "string", "string"),
                          Feature("active", "boolean", "boolean")))


def test_a_clean_batch_parses_in_one_pass_in_signature_order() -> None:
    table = SCORER.read_json([b'{"plan": "basic", "tenure": 3, "active": true, "extra": [1]}',
                              b'{"tenure": 2.5, "plan": "pro", "active": false}'])
    assert table is not None
    assert table.column_names == ["tenure", "plan", "active"]
    assert table.to_pylist() == [{"tenure": 3.0, "plan": "basic", "active": True},
                                 {"tenure": 2.5, "plan": "pro", "active": False}]


@pytest.mark.parametrize("bad", [
    b'{"tenure": "3", "plan": "basic", "active": true}',    # a string for a number
    b'{"tenure": true, "plan": "basic", "active": true}',   # a boolean for a number
    b'{"tenure": 3, "plan": 4, "active": true}',            # a number for a string
    b'{"tenure": 3, "active": true}',                       # a missing feature
    b'{"tenure": null, "plan": "basic", "active": true}',   # a null: allowed, but looked at alone
    b'[3, "basic", true]',                                  # not an object
    b'not json',
    b'',
    b'{"tenure": 1, "plan": "a", "active": true} {"tenure": 2, "plan": "b", "active": true}',
])
def test_anything_else_is_left_to_the_event_by_event_path(bad: bytes) -> None:
    good = b'{"tenure": 1, "plan": "a", "active": true}'
    assert SCORER.read_json([good, bad]) is None
    assert SCORER.read_json([good]) is not None


def test_two_halves_of_an_object_do_not_pass_as_one_event() -> None:
    assert SCORER.read_json([b'{"tenure": 1, "plan": "a",', b'"active": true}']) is None


@pytest.mark.parametrize(("value", "accepted"), [
    (3, True), (3.0, True), (-(2**63), True), (1.5, False), (2**63, False), (1e20, False),
    (float("inf"), False), (float("nan"), False),
])
def test_an_integer_feature_takes_only_values_its_type_can_hold(value: float, accepted: bool) -> None:
    """1.5 for a long passed the check and then failed the whole batch at scoring, event after
    event until each reached --max-deliveries; it is now one bad event, dead-lettered at once."""
    scorer = Scorer(usecase="churn", version="1", estimator=None, wants_frame=False,
                    features=(Feature("tenure_months", "number", "long"),))
    problem = scorer.problem({"tenure_months": value})
    assert (problem is None) is accepted, problem
    if not accepted:
        assert problem == f"feature 'tenure_months': {value!r} is not an integer of the signature's type long"
