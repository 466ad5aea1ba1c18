"""``USECASE@N`` reads the same on the command line, as a batch input and in a scheduled job:
one grammar, one message naming the field, the text and the rule."""

from __future__ import annotations

import json

import pytest
from outcomes.support import churn_data

from valueloop.deploy.batch_io import input_location, open_input
from valueloop.errors import InvalidInput
from valueloop.outcomes.spec import parse_spec
from valueloop.refs import RULE, DatasetRef
from valueloop.store import session

MALFORMED = ["churn@-1", "churn@x", "@3", "churn@3@4", " churn@3", "churn @3", "churn@ 3", "churn@3 ",
             "churn@", "Churn@3", "churn@1.5", "churn@2147483648", "churn@99999999999999999999"]


@pytest.mark.parametrize(("text", "usecase", "version"), [
    ("churn@0", "churn", 0), ("churn@3", "churn", 3), ("churn@2147483647", "churn", 2147483647),
    ("churn@latest", "churn", None), ("churn", "churn", None)])
def test_a_reference_names_its_use_case_and_version(text: str, usecase: str, version: int | None) -> None:
    assert DatasetRef.parse(text, "dataset") == DatasetRef(usecase=usecase, version=version)


def test_a_malformed_reference_is_refused_alike_everywhere(settings, run_cli) -> None:
    for text in MALFORMED:
        got = f"{RULE}, got {json.dumps(text)}"
        shown = run_cli(settings, "data", "show", text, as_user="dave")
        assert (shown.returncode, shown.stderr.strip()) == (2, f"error: dataset: {got}"), text
        with pytest.raises(InvalidInput) as batch, session(settings) as s:
            open_input(s, settings, "churn", text, input_location(text))
        assert str(batch.value) == f"--input: {got}"
        data = churn_data()
        data["batch"] = [{"name": "nightly", "cron": "0 2 * * *", "input": text, "output": "s.parquet"}]
        with pytest.raises(InvalidInput) as declared:
            parse_spec(data)
        assert declared.value.problems == [f"batch[0].input: {got}"]


def test_a_file_whose_name_holds_an_at_is_named_with_its_folder() -> None:
    data = churn_data()
    data["batch"] = [{"name": "nightly", "cron": "0 2 * * *", "input": "./scores@2.parquet", "output": "s.parquet"}]
    assert parse_spec(data).batch[0].input == "./scores@2.parquet"
