"""A batch job SIGKILLed at a named point (the test-only VALUELOOP_TEST_CRASH_AT) leaves no
half-published output and no half-written prediction-log file in use; ``valueloop doctor
--repair`` completes a published output, rolls a half-published one back, and removes the
prediction log's partial files."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pyarrow.dataset as pads
import pytest

from valueloop.config import Settings
from valueloop.deploy.batch import BatchJobView, BatchOptions, list_jobs, run_batch
from valueloop.deploy.predlog import PredictionLog
from valueloop.recovery.doctor import doctor
from valueloop.store import session

#: what a killed batch job leaves is in its files; the database's kind does not matter
pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _doctor(settings: Settings, usecase: str | None = None, repair: bool = False) -> tuple[bool, list[dict]]:
    """The doctor in process (the killed jobs are real processes): whether all is clean, and what it found."""
    with session(settings) as s:
        report = doctor(s, settings, "admin", usecase, repair=repair)
    return report.clean, [f.model_dump() for f in report.findings]


def _resume(settings: Settings, source: Path, out: Path) -> BatchJobView:
    return run_batch(settings, "devon", "churn", str(source), str(out),
                     BatchOptions(part_rows=400, resume=True, overwrite=True))


def _batch(settings: Settings, run_cli: Cli, source: Path, out: Path, *args: str,
           crash: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(settings, "batch", "churn", "--input", str(source), "--output", str(out), "--part-rows", "400",
                   *args, as_user="devon", env={"VALUELOOP_TEST_CRASH_AT": crash} if crash else None)


def _rows(out: Path) -> int:
    return pads.dataset(out, format="parquet").count_rows()


def test_an_output_published_by_a_killed_job_is_whole_and_the_doctor_completes_the_job(
        settings: Settings, champion: str, churn_parquet: Path, tmp_path: Path, run_cli: Cli) -> None:
    out = tmp_path / "scores.parquet"
    killed = _batch(settings, run_cli, churn_parquet, out, crash="after-batch-output-publish")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _rows(out) == 1200
    [job] = list_jobs(settings, "devon", champion)
    assert job.status == "running"

    clean, found = _doctor(settings)
    assert not clean and [(f["kind"], f["repaired"]) for f in found] == [("pending intent", False)]
    assert found[0]["target"] == str(out) and found[0]["repair"].startswith(f"complete batch job {job.id}")
    clean, found = _doctor(settings, repair=True)
    assert clean and found[0]["repaired"]
    assert _doctor(settings) == (True, [])
    [job] = list_jobs(settings, "devon", champion)
    assert (job.status, job.row_count) == ("succeeded", 1200)
    assert not Path(job.staging).exists() and _rows(out) == 1200


def test_an_output_half_replaced_by_a_killed_job_is_put_back_and_the_job_resumes(
        settings: Settings, champion: str, churn_parquet: Path, tmp_path: Path, run_cli: Cli) -> None:
    out = tmp_path / "scores.parquet"
    run_batch(settings, "devon", champion, str(churn_parquet), str(out), BatchOptions(part_rows=400))
    before = pads.dataset(out, format="parquet").to_table().sort_by("customer_id")
    killed = _batch(settings, run_cli, churn_parquet, out, "--overwrite", crash="mid-batch-output-publish")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not out.exists()  # between the two renames: neither output is in place

    clean, found = _doctor(settings, champion, repair=True)
    assert clean and [f["kind"] for f in found] == ["pending intent"]
    assert found[0]["repair"].startswith("roll the publish back")
    assert pads.dataset(out, format="parquet").to_table().sort_by("customer_id").equals(before)
    jobs = list_jobs(settings, "devon", champion)
    assert [j.status for j in jobs] == ["succeeded", "failed"] and "--resume" in jobs[1].error

    resumed = _resume(settings, churn_parquet, out)
    assert (resumed.id, resumed.status) == (jobs[1].id, "succeeded") and _rows(out) == 1200
    assert not list(tmp_path.glob(".scores.parquet.*"))


def test_a_prediction_log_flush_killed_midway_is_never_read_and_the_doctor_removes_it(
        settings: Settings, champion: str, churn_parquet: Path, tmp_path: Path, run_cli: Cli) -> None:
    out = tmp_path / "scores.parquet"
    killed = _batch(settings, run_cli, churn_parquet, out, crash="mid-prediction-log-flush")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    plog = PredictionLog(settings, champion)
    [partial] = list(Path(plog.root.path).glob("date=*/.*"))
    assert partial.stat().st_size > 0 and plog.read().num_rows == 0  # the half-written file is not read

    clean, found = _doctor(settings)
    assert not clean and [(f["kind"], f["target"]) for f in found] == [("prediction-log partial file", str(partial))]
    assert _resume(settings, churn_parquet, out).row_count == 1200
    assert plog.read().num_rows == 1200 and len(plog.request_ids()) == 1200  # every row logged once

    clean, found = _doctor(settings, repair=True)
    assert clean and [f["kind"] for f in found] == ["prediction-log partial file"] and found[0]["repaired"]
    assert not partial.exists() and _doctor(settings) == (True, [])
