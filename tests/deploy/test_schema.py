"""The validator compiled from a signature: coercion rules and problems naming field and rule."""

from __future__ import annotations

import math

import pytest

from valueloop.deploy.schema import compile_validator
from valueloop.errors import InvalidInput

SIGNATURE = [
    {"name": "x", "type": "double", "required": True},
    {"name": "n", "type": "long", "required": True},
    {"name": "opt", "type": "double", "required": False},
    {"name": "flag", "type": "boolean", "required": True},
    {"name": "day", "type": "datetime", "required": True},
    {"name": "city", "type": "string", "required": True},
]
GOOD = {"x": 1, "n": 3.0, "flag": True, "day": "2024-05-01", "city": "Delft"}


def _problems(rows: list[dict]) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        compile_validator(SIGNATURE).records(rows)
    return caught.value.problems


def test_coercions() -> None:
    columns = compile_validator(SIGNATURE).records([GOOD, GOOD | {"opt": None, "x": 2.5}])
    assert columns["x"] == [1.0, 2.5] and type(columns["x"][0]) is float
    assert columns["n"] == [3, 3] and type(columns["n"][0]) is int
    assert math.isnan(columns["opt"][0]) and math.isnan(columns["opt"][1])
    assert compile_validator(SIGNATURE).columns_of({k: [v] for k, v in GOOD.items()})["n"] == [3]
    assert compile_validator(SIGNATURE).rows_of([list(GOOD.values())], list(GOOD))["city"] == ["Delft"]


def test_each_rule_is_named() -> None:
    assert _problems([GOOD | {"n": 2.5}]) == ["[0].n: expected an integer, got 2.5"]
    assert _problems([GOOD | {"x": math.nan}]) == ["[0].x: NaN is not allowed in a required column, got nan"]
    assert _problems([GOOD | {"x": "1"}]) == ["[0].x: expected a number, got '1'"]
    assert _problems([GOOD | {"flag": 1}]) == ["[0].flag: expected true or false, got 1"]
    assert _problems([GOOD | {"day": "yesterday"}]) == ["[0].day: expected an ISO 8601 date or date-time, got 'yesterday'"]
    assert _problems([{k: v for k, v in GOOD.items() if k != "n"}]) == ["[0].n: required field is missing"]
    assert _problems([GOOD | {"zip": 1}])[0].startswith("[0].zip: unknown field")
    assert _problems(["row"]) == ["[0]: expected an object of field values, got 'row'"]
    with pytest.raises(InvalidInput, match="input is empty"):
        compile_validator(SIGNATURE).records([])
    with pytest.raises(InvalidInput) as caught:
        compile_validator(SIGNATURE).columns_of({"x": [1, 2], "n": [1]})
    assert "columns have different lengths: [1, 2]" in caught.value.problems


def test_arrow_columns_are_held_to_the_number_rules_as_requests_are() -> None:
    """A float column is checked in one pass while every value is finite; one that is not is
    looked at rule by rule, with the messages a request gets (NaN only where optional)."""
    import pyarrow as pa

    validator = compile_validator([{"name": "x", "type": "double", "required": True},
                                   {"name": "opt", "type": "double", "required": False}])

    def problems(x: list[float], opt: list[float | None]) -> list[str]:
        with pytest.raises(InvalidInput) as caught:
            validator.table(pa.table({"x": x, "opt": opt}), first_row=10)
        return caught.value.problems

    checked = validator.table(pa.table({"x": [1.0, 2.0], "opt": [math.nan, None]}))
    assert checked["x"].to_pylist() == [1.0, 2.0] and all(math.isnan(v) for v in checked["opt"].to_pylist())
    assert problems([1.0, math.nan], [0.0, math.inf]) == [
        "[11].x: NaN is not allowed in a required column, got nan", "[11].opt: must be a finite number, got inf"]
    assert problems([-math.inf, 1.0], [math.nan, 1.0]) == ["[10].x: must be a finite number, got -inf"]


def test_categories_come_from_the_fitted_encoder() -> None:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"city": ["Delft", "Gouda", "Delft", "Ede"] * 5, "zip": [f"{i}" for i in range(20)],
                          "y": [0, 1] * 10})
    model = make_pipeline(ColumnTransformer([
        ("fixed", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ("pooled", OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=3), ["zip"]),
    ]), LogisticRegression()).fit(frame[["city", "zip"]], frame["y"])
    validator = compile_validator([{"name": "city", "type": "string"}, {"name": "zip", "type": "string"}], model)
    assert validator.records([{"city": "Ede", "zip": "new"}]) == {"city": ["Ede"], "zip": ["new"]}
    with pytest.raises(InvalidInput) as caught:
        validator.records([{"city": "Rome", "zip": "1"}])
    assert caught.value.problems == ["[0].city: unknown category; known: Delft, Ede, Gouda, got 'Rome'"]
