"""`valueloop compact`: the prediction log's past days rewritten as one file each, by operations
only, audited; the monitor reads the same rows before and after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from valueloop.config import Settings
from valueloop.deploy.predlog import PredictionLog


def test_compact_is_an_audited_operation(settings: Settings, approved_usecase, run_cli) -> None:
    from valueloop.outcomes.audit import events
    from valueloop.store import session

    approved_usecase(settings)
    plog = PredictionLog(settings, "churn")
    yesterday = datetime.now(UTC) - timedelta(days=1)
    for flush in range(4):
        plog.append([{"request_id": f"r{flush}-{i}", "model_version": "1", "prediction": i % 2, "ts": yesterday}
                     for i in range(3)], source="rest")
    before = sorted(plog.read()["request_id"].to_pylist())

    refused = run_cli(settings, "compact", "churn", as_user="dana")
    assert refused.returncode != 0 and "dana may not operate" in refused.stderr, refused.stderr
    done = run_cli(settings, "compact", "churn", as_user="oscar")
    assert done.returncode == 0, done.stderr
    assert "4 file(s) of 1 day(s) compacted into 1, 12 row(s)" in done.stdout
    day = Path(plog.root.path) / f"date={yesterday:%Y-%m-%d}"
    assert [p.name.split("-")[0] for p in day.iterdir()] == ["compact"]
    assert sorted(plog.read()["request_id"].to_pylist()) == before
    with session(settings) as s:
        [event] = [e for e in events(s, usecase="churn") if e.action == "predictions.compact"]
    assert event.actor == "oscar" and event.after["rows"] == 12
