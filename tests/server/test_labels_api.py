"""Labels and the monitor through the control plane, on a real uvicorn: a text label stored
before labels were checked and a damaged file are reported by GET .../monitor (it answered 500),
and ``valueloop labels`` in server mode lists, corrects and withdraws labels by their routes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from operate.support import log_traffic, prepare_reference

from valueloop.config import Settings
from valueloop.deploy.labels import current, record_feedback


def _client(api, user: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VALUELOOP_", "XDG_"))}
    env.update(HOME=str(home), VALUELOOP_HOME=str(home), COLUMNS="200", NO_COLOR="1",
               VALUELOOP_SERVER_URL=api.url, VALUELOOP_TOKEN=api.tokens[user])
    return subprocess.run([sys.executable, "-m", "valueloop", *args], env=env, cwd=home, capture_output=True,
                          text=True, timeout=300)


def test_bad_labels_and_files_through_the_control_plane(db_settings: Settings, approved_usecase, server,
                                                        tmp_path: Path) -> None:
    prepare_reference(db_settings, approved_usecase)
    traffic = log_traffic(db_settings, 200, 4, period=0)
    record_feedback(db_settings, "eve", "churn", zip(traffic.ids[:20], traffic.truth[:20]))
    labels = db_settings.home / "predictions" / "churn" / "labels"
    rid = traffic.ids[0]
    pq.write_table(pa.table({"request_id": [rid], "label": ["yes"],
                             "ts": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC"))}),
                   labels / "part-29990101T000000000000-text.parquet")
    (labels / "part-29990101T000000000001-junk.parquet").write_bytes(b"not parquet")
    api = server(db_settings)

    monitored = api("GET", "/api/usecases/churn/monitor", "oscar")
    assert monitored.status_code == 200, monitored.text
    report = monitored.json()
    assert report["windows"][0]["labeled"] == 19
    assert any("junk.parquet was skipped" in p for p in report["problems"])
    assert any(f"label of request {rid!r}" in p and "got 'yes'" in p for p in report["problems"])

    home = tmp_path / "client"
    home.mkdir()
    bad = _client(api, "dana", home, "labels", "list", "churn", "--bad", "--json")
    assert bad.returncode == 0, bad.stderr
    assert [(r["request_id"], r["label"], r["labeled_by"]) for r in json.loads(bad.stdout)] == [(rid, "yes", None)]
    refused = _client(api, "eve", home, "labels", "delete", "churn", rid)
    assert refused.returncode == 6 and "requires role data_scientist or operations" in refused.stderr
    fixed = _client(api, "oscar", home, "labels", "correct", "churn", rid, "1")
    assert fixed.returncode == 0, fixed.stderr
    assert f"label of {rid} is now 1 (by oscar)" in fixed.stdout
    assert current(db_settings, "churn").views[rid].label == 1
    withdrawn = _client(api, "oscar", home, "labels", "delete", "churn", traffic.ids[1])
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert traffic.ids[1] not in current(db_settings, "churn").views
    assert list(home.iterdir()) == []  # the client opened no home of its own
