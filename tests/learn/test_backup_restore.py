"""``valueloop backup`` and ``valueloop restore`` round trip: a trained, promoted use case is backed
up while a server answers predictions, changed (a promotion, an ingest), restored into a new home
(and database) and the old home moved away; the restored one holds the trail, every dataset
version and the champion as they were at the backup, and nothing after it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import numpy as np
from learn_support import ingest
from sqlalchemy import select

from valueloop.config import Settings
from valueloop.data import list_versions, read_version
from valueloop.demo.deploy import REQUEST
from valueloop.deploy.local import serve_locally
from valueloop.learn import registry, training
from valueloop.store import session
from valueloop.store.models import AuditEvent


def _state(settings: Settings) -> tuple[list, dict, list]:
    """The audit trail's links, every dataset version's rows, and the champion's predictions."""
    with session(settings) as s:
        trail = [(e.id, e.action, e.hash) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        tables = {v.version: read_version(s, "churn", v.version) for v in list_versions(s, "churn")}
        model = registry.load_model(s, settings, "churn", "champion")
    rows = tables[0].to_pandas().head(1000)
    predicted = model.predict(rows[model.metadata.get_input_schema().input_names()])
    return trail, tables, np.asarray(predicted).tolist()


def _traffic(url: str, rows: list[dict], stop: threading.Event, answers: list[int]) -> None:
    """Single-row predictions, one after another, until stopped."""
    with httpx.Client(timeout=120) as client:
        while not stop.is_set() and len(answers) < 10_000:
            answers.append(client.post(f"{url}/predict/churn", json=rows[len(answers) % len(rows)]).status_code)


def test_a_backup_restores_into_a_new_home_as_it_was(settings: Settings, churn, run_cli, new_settings,
                                                     tmp_path: Path) -> None:
    name, project = churn
    versions = []
    for _ in range(2):
        with session(settings) as s:
            versions.append(training.train(s, settings, "dana", name, candidates=["logistic"]).registered.version)
    first, second = versions
    with session(settings) as s:
        for version in (first, second):
            registry.accept(s, "olivia", name, version, accepted=True, comment="calls the right customers")
        registry.promote(s, settings, "dana", name, first)
    trail, tables, predictions = _state(settings)

    # the backup is taken while a server answers predictions (and writes them to the log)
    served = serve_locally(settings, auth=False)
    rows = [REQUEST | {"tenure_months": months} for months in range(1, 50)]
    stop, answers = threading.Event(), []
    traffic = threading.Thread(target=_traffic, args=(served.url, rows, stop, answers))
    traffic.start()
    out = tmp_path / "backup"
    try:
        taken = run_cli(settings, "backup", str(out), "--json", as_user="admin")
    finally:
        stop.set()
        traffic.join()
        served.stop()
    assert taken.returncode == 0, taken.stderr
    assert answers and set(answers) == {200}, answers[:5]
    assert {"metadata.db", "mlflow.db"} & set(json.loads(taken.stdout)["files"]) or "metadata.dump" in taken.stdout
    refused = run_cli(settings, "backup", str(tmp_path / "other"), as_user="dana")
    assert refused.returncode == 6 and "requires admin" in refused.stderr
    with session(settings) as s:  # after the backup: absent once restored
        registry.promote(s, settings, "dana", name, second)
    ingest(settings, name, project, rows=1500, seed=8)
    assert run_cli(settings, "restore", str(out), "--check").returncode == 0

    restored = new_settings(tmp_path / "restored")
    done = run_cli(restored, "restore", str(out), "--json", as_user="admin")
    assert done.returncode == 0, done.stderr
    settings.home.rename(tmp_path / "moved-away")

    after, after_tables, after_predictions = _state(restored)
    assert after[:len(trail)] == trail and [a for _, a, _ in after[len(trail):]] == ["home.restore"]
    assert after_tables[0].equals(tables[0]) and after_predictions == predictions
    with session(restored) as s:
        assert [v.version for v in list_versions(s, name)] == [0]
        assert registry.get_model(s, "dana", name, "champion").version == first
    assert run_cli(restored, "audit", "verify", as_user="admin").returncode == 0
    assert run_cli(restored, "doctor", as_user="admin").returncode == 0
    for database in restored.home.glob("*.db"):
        assert str(settings.home).encode() not in database.read_bytes(), database

    corrupt = out / "home" / next(p for p in out.joinpath("home").rglob("*") if p.is_file()).relative_to(out / "home")
    corrupt.write_bytes(b"changed")
    checked = run_cli(settings, "backup", "verify", str(out))
    assert checked.returncode == 2 and "digest differs" in checked.stderr
