"""One rule for durations ("30d"): the use case file, the command line and the freshness check
accept and refuse the same texts, with the same message."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import duckdb
import pytest
from outcomes.support import add_people, churn_data

from valueloop.data.quality import Checker
from valueloop.durations import RULE
from valueloop.errors import InvalidInput
from valueloop.outcomes.spec import FreshnessCheck, parse_spec

ACCEPTED = {"90s": timedelta(seconds=90), "15m": timedelta(minutes=15), "36500d": timedelta(days=36500)}
REFUSED = ["0d", "", "30", "1.5h", " 30d", "30 d", "30D", "1w", "-1d", "36501d", "99999999999999999999d"]


def _file_problems(value: str) -> list[str]:
    """The problems the use case file's loader names for ``value`` in each duration field."""
    data = churn_data()
    data["data"]["checks"] = [{"check": "freshness", "column": "signup_date", "max_age": value}]
    data["operate"] = {"every": value, "window": {"every": value},
                       "alerts": [{"name": "drifting", "metric": "dataset_drift_share", "comparator": ">",
                                   "threshold": 0.5, "dedup": value}]}
    try:
        spec = parse_spec(data)
    except InvalidInput as exc:
        return exc.problems
    assert spec.operate.every.delta == spec.operate.window.every.delta == spec.operate.alerts[0].dedup.delta \
        == spec.data.checks[0].max_age.delta == ACCEPTED[value]
    assert spec.model_dump(mode="json")["operate"]["every"] == value  # stored as written
    return []


@pytest.mark.parametrize("value", REFUSED)
def test_the_use_case_file_refuses_a_bad_duration_in_every_field_alike(value: str) -> None:
    got = f", got {json.dumps(value)}"
    assert _file_problems(value) == [
        f"data.checks[0].freshness.max_age: {RULE}{got}", f"operate.window.every: {RULE}{got}",
        f"operate.every: {RULE}{got}", f"operate.alerts[0].dedup: {RULE}{got}"]


@pytest.mark.parametrize("value", ACCEPTED)
def test_the_use_case_file_accepts_a_duration_in_every_field(value: str) -> None:
    assert _file_problems(value) == []


def test_the_command_line_accepts_and_refuses_what_the_file_does(settings, run_cli, refused) -> None:
    add_people(settings)
    for value in REFUSED:
        refused(run_cli(settings, "tokens", "create", "--expires-in", value, as_user="dana"), 2,
                f"error: --expires-in: {RULE}, got {json.dumps(value)}")
    for value, length in ACCEPTED.items():
        created = run_cli(settings, "tokens", "create", "--expires-in", value, "--json", as_user="dana")
        assert created.returncode == 0, created.stderr
        expires = datetime.fromisoformat(json.loads(created.stdout)["expires_at"])
        assert abs(expires - datetime.fromisoformat(json.loads(created.stdout)["created_at"]) - length) \
            < timedelta(seconds=5)


@pytest.mark.parametrize(("max_age", "passes"), [("90m", False), ("150m", True), ("1h", False), ("1d", True)])
def test_the_freshness_check_measures_the_age_it_was_given(max_age: str, passes: bool) -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE dataset AS SELECT now() - INTERVAL 2 HOUR AS seen")
    checker = Checker(con, con, [FreshnessCheck(check="freshness", column="seen", max_age=max_age)])
    values = list(con.execute(f"SELECT {', '.join(checker.aggregates)} FROM dataset").fetchone())
    report = checker.report(values)
    assert report["passed"] is passes, report
