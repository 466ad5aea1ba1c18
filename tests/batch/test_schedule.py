"""Scheduled batch jobs: the use case file's batch section, run on its cron."""

from __future__ import annotations

import time

import pyarrow.parquet as pq
import pytest

from valueloop.config import Settings
from valueloop.deploy.batch import list_jobs
from valueloop.deploy.schedule import start_scheduler, trigger
from valueloop.errors import InvalidInput


def _declare(settings: Settings, batch: list[dict]) -> None:
    from valueloop.outcomes.spec import parse_spec
    from valueloop.outcomes.usecases import get_usecase, update_usecase
    from valueloop.store import session

    with session(settings) as s:
        data = get_usecase(s, "churn").spec | {"batch": batch}
        update_usecase(s, "oscar", parse_spec(data))  # a job runs as the one who schedules it


def test_a_job_declared_every_second_runs_as_the_operations_member(settings: Settings, champion: str) -> None:
    _declare(settings, [{"name": "nightly", "cron": "* * * * * *", "input": "churn@latest",
                         "output": "scores-{ts}.parquet"}])
    scheduler = start_scheduler(settings)
    try:
        deadline = time.monotonic() + 180
        while not any(j.status == "succeeded" for j in list_jobs(settings, "oscar", champion)):
            assert time.monotonic() < deadline, "no scheduled run succeeded within 180 s"
            time.sleep(0.2)
        assert scheduler.get_job("batch:churn:nightly") is not None
    finally:
        scheduler.shutdown(wait=True)
    done = [j for j in list_jobs(settings, "oscar", champion) if j.status == "succeeded"]
    assert done[0].actor == "oscar" and done[0].input == "churn@latest"
    output = settings.home / "batch" / "churn"
    assert done[0].output.startswith(str(output / "scores-"))
    assert pq.read_table(done[0].output).num_rows == done[0].row_count > 0


def test_a_cron_of_neither_five_nor_six_fields_is_refused_by_name(settings: Settings, champion: str) -> None:
    with pytest.raises(InvalidInput, match=r"batch\[0\]\.cron: expected a cron expression of 5 fields"):
        _declare(settings, [{"name": "bad", "cron": "every day", "input": "churn@latest", "output": "x.parquet"}])
    assert str(trigger("30 2 * * 1")).startswith("cron[")
