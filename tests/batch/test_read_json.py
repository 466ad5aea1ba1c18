"""The stream consumer's fast path: a batch parses as a whole only when every event is one object
of known fields that Arrow reads as their types, and it is then held to the rules a REST request
is (deploy/schema.py), column by column. Anything else makes the consumer examine the events one
by one, as REST would, and dead-letter the bad ones with REST's message."""

from __future__ import annotations

import pyarrow as pa
import pytest

from valueloop.deploy.schema import Column, Validator
from valueloop.errors import InvalidInput

VALIDATOR = Validator([Column("tenure", "double"), Column("plan", "string", categories=frozenset({"basic", "pro"})),
                       Column("active", "boolean")])


def test_a_clean_batch_parses_in_one_pass_in_signature_order() -> None:
    table = VALIDATOR.read_json([b'{"plan": "basic", "tenure": 3, "active": true}',
                                 b'{"tenure": 2.5, "plan": "pro", "active": false}'])
    assert table is not None
    assert VALIDATOR.table(table).to_pylist() == [{"tenure": 3.0, "plan": "basic", "active": True},
                                                  {"tenure": 2.5, "plan": "pro", "active": False}]


@pytest.mark.parametrize("bad", [
    b'{"tenure": "3", "plan": "basic", "active": true}',    # a string for a number
    b'{"tenure": true, "plan": "basic", "active": true}',   # a boolean for a number
    b'{"tenure": 3, "plan": "basic", "active": true, "extra": [1]}',  # a field the model does not know
    b'[3, "basic", true]',                                  # not an object
    b'not json',
    b'',
    b'{"tenure": 1, "plan": "pro", "active": true} {"tenure": 2, "plan": "pro", "active": true}',
])
def test_what_does_not_parse_is_left_to_the_event_by_event_path(bad: bytes) -> None:
    good = b'{"tenure": 1, "plan": "pro", "active": true}'
    assert VALIDATOR.read_json([good, bad]) is None
    assert VALIDATOR.read_json([good]) is not None


def test_two_halves_of_an_object_do_not_pass_as_one_event() -> None:
    assert VALIDATOR.read_json([b'{"tenure": 1, "plan": "pro",', b'"active": true}']) is None


@pytest.mark.parametrize("record", [
    {"tenure": None, "plan": "basic", "active": True},     # null in a required field
    {"tenure": 3, "active": True},                          # a missing field
    {"tenure": 3, "plan": "lifetime", "active": True},     # a category the model never saw
    {"tenure": 3, "plan": 4, "active": True},              # a number for a string
])
def test_a_table_breaks_the_rules_exactly_where_a_request_does(record: dict) -> None:
    with pytest.raises(InvalidInput) as rest:
        VALIDATOR.records([record])
    with pytest.raises(InvalidInput) as arrow:
        VALIDATOR.table(pa.Table.from_pylist([record]))
    field = rest.value.problems[0].split(":")[0]
    assert field == arrow.value.problems[0].split(":")[0] or "missing" in rest.value.problems[0]


@pytest.mark.parametrize(("value", "accepted"), [
    (3, True), (3.0, True), (-(2**63), True), (1.5, False), (2**63, False), (1e20, False),
    (float("inf"), False), (float("nan"), False),
])
def test_an_integer_feature_takes_only_values_its_type_can_hold_with_the_message_rest_gives(
        value: float, accepted: bool) -> None:
    """1.5 for a long passed the stream's check and failed the whole batch at scoring; a table
    is held to the rule a request is, with the same message."""
    validator = Validator([Column("tenure_months", "long")])
    try:
        validator.records([{"tenure_months": value}])
        rest = None
    except InvalidInput as exc:
        rest = exc.problems
    column = pa.array([value], pa.float64() if isinstance(value, float) else
                      pa.uint64() if value >= 2**63 else pa.int64())  # a Parquet file's unsigned column
    try:
        checked = validator.table(pa.table({"tenure_months": column}))
        arrow = None
    except InvalidInput as exc:
        arrow = exc.problems
    assert (rest is None) is accepted and arrow == rest
    if accepted:
        assert checked["tenure_months"].to_pylist() == [int(value)]
