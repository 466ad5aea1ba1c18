"""A process SIGKILLed at a named point (the test-only VALUELOOP_TEST_CRASH_AT) leaves nothing
that the next command uses, and ``valueloop doctor --repair`` mends what it left."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from data.data_support import read, update
from deploy_support import server_started

from valueloop.config import Settings
from valueloop.data.delta import staging_root, table_path
from valueloop.examples import load_generator

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _killed_at(point: str) -> dict[str, str]:
    return {"VALUELOOP_TEST_CRASH_AT": point}


def _doctor(settings: Settings, run_cli: Cli, *args: str) -> tuple[int, list[dict]]:
    done = run_cli(settings, "doctor", "--json", *args, as_user="admin")
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)["findings"]


def test_a_delta_commit_killed_before_its_row_is_never_built_on(settings: Settings, churn: Path,
                                                                 run_cli: Cli) -> None:
    first = run_cli(settings, "data", "ingest", "churn", "--project", str(churn), as_user="dave")
    assert first.returncode == 0, first.stderr
    load_generator("churn").write(churn / "data", rows=100, seed=3, period=1)
    update(settings, lambda d: d["sources"][0].update(path="data/customers_period1.csv"))

    killed = run_cli(settings, "data", "ingest", "churn", "--mode", "overwrite", as_user="dave", cwd=churn,
                     env=_killed_at("after-delta-commit"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    code, found = _doctor(settings, run_cli)
    assert code == 1 and not any(f["repaired"] for f in found)
    assert {f["kind"] for f in found} == {"pending intent", "unrecorded Delta versions", "unreferenced data files",
                                          "staging folder"}

    # the next append builds on the last recorded version (600 rows), not on the killed overwrite's
    appended = run_cli(settings, "data", "ingest", "churn", "--mode", "append", "--json", as_user="dave",
                       cwd=churn)
    assert appended.returncode == 0, appended.stderr
    assert json.loads(appended.stdout)["row_count"] == 700
    # it said what it found (and built on none of it), repairing only what its own commit must
    assert "doctor: unrecorded Delta versions" in appended.stderr and "not used by this ingest" in appended.stderr
    assert read(settings).num_rows == 700
    from deltalake import DeltaTable

    assert DeltaTable(table_path(settings, "churn").uri).to_pyarrow_table().num_rows == 700

    code, found = _doctor(settings, run_cli, "--repair")
    assert code == 0 and {f["kind"] for f in found} == {"pending intent", "unreferenced data files", "staging folder"}
    assert all(f["repaired"] for f in found)
    assert _doctor(settings, run_cli) == (0, [])
    assert not list(staging_root(settings).iterdir())
    assert read(settings).num_rows == 700 and read(settings, 0).num_rows == 600
    trail = json.loads(run_cli(settings, "audit", "--action", "doctor", "--json", as_user="admin").stdout)
    assert [e["actor"] for e in trail] == ["admin"]


def test_doctor_repairs_an_unrecorded_version_before_any_ingest(settings: Settings, churn: Path,
                                                                 run_cli: Cli) -> None:
    killed = run_cli(settings, "data", "ingest", "churn", "--project", str(churn), as_user="dave",
                     env=_killed_at("after-delta-commit"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    refused = run_cli(settings, "doctor", "--repair", as_user="dave")
    assert refused.returncode == 6 and "requires admin" in refused.stderr, refused.stderr

    code, found = _doctor(settings, run_cli, "--repair", "--usecase", "churn")
    assert code == 0 and {f["kind"] for f in found} == {"pending intent", "unrecorded Delta versions"}
    assert not table_path(settings, "churn").exists()
    again = run_cli(settings, "data", "ingest", "churn", "--json", as_user="dave", cwd=churn)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["version"] == 0 and read(settings).num_rows == 600


def test_the_server_repairs_at_start(settings: Settings, churn: Path, run_cli: Cli, tmp_path: Path) -> None:
    killed = run_cli(settings, "data", "ingest", "churn", "--project", str(churn), as_user="dave",
                     env=_killed_at("after-delta-commit"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    server_started(settings, tmp_path / "server.log")  # it answers once the repair is done
    assert _doctor(settings, run_cli) == (0, [])
    trail = json.loads(run_cli(settings, "audit", "--action", "doctor", "--json", as_user="admin").stdout)
    assert [(e["actor"], len(e["after"]["repaired"])) for e in trail] == [("policy:doctor", 3)]
