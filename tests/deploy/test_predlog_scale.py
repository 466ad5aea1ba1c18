"""The prediction log shared by many writers: each process writes its own files under one prefix
(local or on a real S3-compatible server), readers list only the window's days, and compaction
rewrites a day's small files as one without losing or doubling a row, even when it dies midway."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from valueloop.config import Settings
from valueloop.deploy.predlog import PredictionLog, _listing
from valueloop.storage import Location

_WRITE = """
import sys
from datetime import datetime, timedelta, UTC
from valueloop.config import load_settings
from valueloop.deploy.predlog import PredictionLog
plog, who = PredictionLog(load_settings(), "churn"), sys.argv[1]
day = datetime.now(UTC) - timedelta(days=1)
for batch in range(int(sys.argv[2])):
    plog.append([{"request_id": f"{who}-{batch}-{i}", "model_version": "1", "prediction": i % 2,
                  "tenure_months": i, "ts": day} for i in range(5)], source="rest")
"""


def _on(settings: Settings, prediction_log: str) -> Settings:
    return dataclasses.replace(settings, prediction_log=prediction_log)


def _writers(settings: Settings, n: int, batches: int) -> None:
    """``n`` processes appending ``batches`` files each, side by side."""
    env = {**os.environ, **settings.as_env()}
    running = [subprocess.Popen([sys.executable, "-c", _WRITE, f"w{i}", str(batches)], env=env)
               for i in range(n)]
    assert [p.wait(timeout=120) for p in running] == [0] * n


@pytest.mark.parametrize("store", ["local", "s3"])
def test_writers_share_a_prefix_and_compaction_keeps_every_row(tmp_path: Path, store: str,
                                                               request: pytest.FixtureRequest) -> None:
    from valueloop.config import load_settings

    where = str(tmp_path / "log") if store == "local" else request.getfixturevalue("s3_bucket") + "/log"
    settings = _on(load_settings({"VALUELOOP_HOME": str(tmp_path / "home")}), where)
    _writers(settings, 2, 6)
    plog = PredictionLog(settings, "churn")
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    day = Location.parse(where, "t").child("churn", f"date={yesterday}")
    names = _listing(day)
    assert len(names) == 12 and len({n.rsplit("-", 1)[0] for n in names}) == 2, names  # writer id + sequence
    before = plog.read()
    assert before.num_rows == 60 and len(set(before["request_id"].to_pylist())) == 60

    # a compaction that dies after writing its file and before deleting the files it replaces
    env = {**os.environ, **settings.as_env(), "VALUELOOP_TEST_CRASH_AT": "predlog.compacted"}
    died = subprocess.run([sys.executable, "-c", "from valueloop.config import load_settings\n"
                           "from valueloop.deploy.predlog import PredictionLog\n"
                           "PredictionLog(load_settings(), 'churn').compact()"], env=env)
    assert died.returncode == -9
    assert len(_listing(day)) == 13, "the compacted file beside the files it replaces"
    assert sorted(plog.read()["request_id"].to_pylist()) == sorted(before["request_id"].to_pylist())

    plog.compact()  # finishes the dead one: deletes what its file replaces
    [compacted] = _listing(day)
    assert compacted.startswith("compact-")
    assert sorted(plog.read()["request_id"].to_pylist()) == sorted(before["request_id"].to_pylist())

    for late in ("late-1", "late-2"):  # late files of the same day: compacted with the compacted one
        plog.append([{"request_id": f"{late}-{i}", "model_version": "1", "prediction": 1, "tenure_months": i,
                      "ts": datetime.now(UTC) - timedelta(days=1)} for i in range(5)], source="batch")
    done = plog.compact()
    assert (done.days, done.files, done.rows) == (1, 3, 70)
    assert len(_listing(day)) == 1 and plog.read().num_rows == 70
    assert plog.compact().files == 0, "a day of one file is left alone"


def test_a_window_lists_only_its_own_days(settings: Settings, tmp_path: Path) -> None:
    plog = PredictionLog(settings, "churn")
    now = datetime.now(UTC)
    for days_ago in (0, 3, 10):
        plog.append([{"request_id": f"r{days_ago}", "model_version": "1", "prediction": 1,
                      "ts": now - timedelta(days=days_ago)}], source="rest")
    old = Path(plog.root.path) / f"date={(now - timedelta(days=10)).date()}"
    (old / "part-junk.parquet").write_bytes(b"not parquet")  # read only by a reader that lists it

    problems: list[str] = []
    window = plog.read(now - timedelta(days=4), now + timedelta(seconds=1), problems)
    assert window["request_id"].to_pylist() == ["r3", "r0"] and problems == []
    assert {f.uri.rsplit("/", 2)[1] for f in plog.files(now - timedelta(days=4), now)} == {
        f"date={(now - timedelta(days=3)).date()}", f"date={now.date()}"}
    everything: list[str] = []
    assert plog.read(problems=everything).num_rows == 3 and "part-junk.parquet was skipped" in everything[0]
    # the time filter is pushed down to the files: a read of part of a day returns only its rows
    assert plog.read(now - timedelta(days=3, minutes=1), now - timedelta(days=2))["request_id"].to_pylist() == ["r3"]
