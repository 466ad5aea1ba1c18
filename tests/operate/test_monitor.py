"""The monitor over the real prediction log: windows, drift, missing features, labels (unknown,
late), estimates before labels, stored results, and damaged files reported beside the others."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from operate.support import log_traffic, prepare_reference, set_operate
from valueloop.config import Settings
from valueloop.deploy.labels import record_feedback
from valueloop.errors import PermissionDenied
from valueloop.operate.monitor import run_monitor
from valueloop.operate.scheduler import run_all
from valueloop.operate.tables import MonitorResult
from valueloop.outcomes.spec import parse_spec
from valueloop.outcomes.usecases import create_usecase, get_usecase, spec_of
from valueloop.store import session

DAY1 = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY2 = datetime(2026, 3, 2, 12, tzinfo=UTC)
DAILY = {"window": {"every": "1d"}}


def test_window_with_no_data_is_a_clear_message(settings: Settings, ingested: Path, run_cli) -> None:
    report = run_monitor(settings, "oscar", "churn")
    assert report.windows == [] and report.reference_version == 0
    assert "no predictions of 'churn' in the log" in report.message
    done = run_cli(settings, "monitor", "churn", as_user="oscar")
    assert done.returncode == 0, done.stderr
    assert "no predictions of 'churn'" in done.stdout
    with pytest.raises(PermissionDenied, match="dana may not operate on use case 'churn': requires role operations"):
        run_monitor(settings, "dana", "churn")


def test_drift_of_a_new_month_is_detected_and_stored(
        db_settings: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]]) -> None:
    prepare_reference(db_settings, approved_usecase)
    set_operate(db_settings, DAILY)
    log_traffic(db_settings, 800, 21, period=0, ts=DAY1)
    log_traffic(db_settings, 800, 22, period=1, ts=DAY2)
    report = run_monitor(db_settings, "oscar", "churn")
    same, shifted = report.windows
    assert (same.start, shifted.start) == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    assert not same.dataset_drift and same.drifted == []
    assert shifted.dataset_drift
    assert {"birth_date", "monthly_charges", "support_calls"} <= set(shifted.drifted)
    assert "contract" not in shifted.drifted and "payment_method" not in shifted.drifted
    assert shifted.drift["monthly_charges"].method == "wasserstein"  # 3000 reference rows
    assert report.retrain is None  # the default policy retrains only by hand
    with session(db_settings) as s:
        stored = s.scalars(select(MonitorResult).order_by(MonitorResult.window_start)).all()
        assert [(r.rows, r.dataset_drift) for r in stored] == [(800, False), (800, True)]
    run_monitor(db_settings, "oscar", "churn")  # recomputed, not duplicated
    with session(db_settings) as s:
        assert len(s.scalars(select(MonitorResult)).all()) == 2


def test_feature_missing_from_the_log(settings: Settings, ingested: Path) -> None:
    log_traffic(settings, 300, 3, period=0, drop=("support_calls",))
    window = run_monitor(settings, "oscar", "churn").windows[0]
    assert "support_calls" not in window.drift
    assert window.missing["support_calls"].absent and window.missing["support_calls"].rising
    assert any("feature(s) missing from the prediction log: support_calls" in p for p in window.problems)
    assert window.values()["missing.support_calls"] == 1.0


def test_labels_for_unknown_request_ids_are_refused_by_name(settings: Settings, ingested: Path) -> None:
    traffic = log_traffic(settings, 200, 4, period=0)
    feedback = record_feedback(settings, "eve", "churn", [*zip(traffic.ids[:50], traffic.truth[:50]),
                                                          ("no-such-request", 1)])
    assert feedback.recorded == 50 and feedback.unknown == ["no-such-request"]
    window = run_monitor(settings, "oscar", "churn").windows[0]
    assert window.labeled == 50 and not window.estimated
    assert 0.5 < window.performance["roc_auc"] <= 1.0


def test_late_labels_update_the_windows_they_belong_to(settings: Settings, ingested: Path) -> None:
    set_operate(settings, DAILY)
    first = log_traffic(settings, 400, 5, period=0, ts=DAY1)
    log_traffic(settings, 400, 6, period=0, ts=DAY2)
    before = run_monitor(settings, "oscar", "churn").windows
    assert [w.labeled for w in before] == [0, 0]
    assert before[0].estimated and before[0].performance == {}
    assert 0 < before[0].estimate["accuracy"] <= 1 and "recall" in before[0].estimate

    record_feedback(settings, "eve", "churn", zip(first.ids, first.truth))  # day 1's outcomes, a day late
    after = run_monitor(settings, "oscar", "churn").windows
    assert [w.labeled for w in after] == [400, 0]
    assert not after[0].estimated and after[0].performance["accuracy"] > 0.5
    assert after[1].estimated
    with session(settings) as s:
        stored = s.scalars(select(MonitorResult).order_by(MonitorResult.window_start)).all()
        assert [r.labeled for r in stored] == [400, 0]
        assert "accuracy" in stored[0].performance and not stored[0].estimated


def test_a_damaged_file_of_one_use_case_is_reported_and_every_use_case_is_monitored(
        settings: Settings, ingested: Path) -> None:
    set_operate(settings, {})
    with session(settings) as s:
        other = spec_of(get_usecase(s, "churn")).model_dump(mode="json", by_alias=True) | {"name": "churn-eu"}
        create_usecase(s, "olivia", parse_spec(other))
    broken = settings.home / "predictions" / "churn-eu" / "date=2026-03-01"
    broken.mkdir(parents=True)
    (broken / "part-broken.parquet").write_bytes(b"not parquet at all")
    log_traffic(settings, 200, 7, period=1)
    outcomes = {o.usecase: o for o in run_all(settings)}
    assert outcomes["churn-eu"].ok and "part-broken.parquet was skipped" in outcomes["churn-eu"].detail
    assert outcomes["churn"].ok and "1 window(s)" in outcomes["churn"].detail


def test_the_scheduler_runs_the_monitor_and_schedules_retraining(settings: Settings, ingested: Path) -> None:
    from apscheduler.triggers.cron import CronTrigger

    from valueloop.operate.scheduler import start_monitoring
    from valueloop.outcomes import audit

    set_operate(settings, {"every": "1h", "retrain": {"triggers": ["schedule", "manual"], "schedule": "0 3 * * 1"}})
    log_traffic(settings, 200, 8, period=0)
    scheduler = start_monitoring(settings)
    try:
        deadline = time.monotonic() + 120  # a bound on waiting for the background run, not a timing
        while time.monotonic() < deadline:
            with session(settings) as s:
                runs = audit.events(s, usecase="churn", action="monitor.run")
            if runs:
                break
            time.sleep(0.2)
        # the scheduler acts as the file's operate policy, never in the name of a person
        assert [(r.actor, r.after["windows"]) for r in runs] == [("policy:schedule", 1)]
        assert {job.id for job in scheduler.get_jobs()} == {"operate:sync", "monitor:churn", "retrain:churn",
                                                            "compact:churn"}
        assert isinstance(scheduler.get_job("retrain:churn").trigger, CronTrigger)
    finally:
        scheduler.shutdown(wait=True)


def test_a_text_label_and_damaged_files_are_reported_and_the_monitor_goes_on(
        settings: Settings, ingested: Path, run_cli) -> None:
    """What /feedback stored before labels were checked (a text label for a 0/1 target) made
    Arrow refuse to merge the label files, and a damaged file made every read fail."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    traffic = log_traffic(settings, 200, 4, period=0)
    record_feedback(settings, "eve", "churn", zip(traffic.ids[:50], traffic.truth[:50]))
    root = settings.home / "predictions" / "churn"
    pq.write_table(pa.table({"request_id": [traffic.ids[0]], "label": ["yes"],
                             "ts": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC")),
                             "labeled_by": ["eve"]}), root / "labels" / "part-29990101T000000000000-text.parquet")
    (root / "labels" / "part-29990101T000000000001-junk.parquet").write_bytes(b"PAR1 not a parquet file")
    day = next(root.glob("date=*"))
    (day / "part-29990101T000000000000-junk.parquet").write_bytes(b"\x00" * 64)

    report = run_monitor(settings, "oscar", "churn")
    window = report.windows[0]
    assert (window.rows, window.labeled) == (200, 49) and "roc_auc" in window.performance
    assert any("labels/part-29990101T000000000001-junk.parquet was skipped" in p for p in report.problems)
    assert any(f"{day.name}/part-29990101T000000000000-junk.parquet was skipped" in p for p in report.problems)
    assert any(f"label of request {traffic.ids[0]!r}: expected one of 0, 1 (the classes of target 'churned'), "
               "got 'yes'" in p for p in report.problems)
    done = run_cli(settings, "monitor", "churn", as_user="oscar")
    assert done.returncode == 0, done.stderr
    assert "junk.parquet was skipped" in done.stdout and "Traceback" not in done.stderr

    fixed = run_cli(settings, "labels", "correct", "churn", traffic.ids[0], str(traffic.truth[0]), as_user="oscar")
    assert fixed.returncode == 0, fixed.stderr
    after = run_monitor(settings, "oscar", "churn")
    assert after.windows[0].labeled == 50 and not any("got 'yes'" in p for p in after.problems)
