"""A training SIGKILLed at a named point (the test-only VALUELOOP_TEST_CRASH_AT) leaves MLflow runs
and model versions that valueloop never uses, and ``valueloop doctor --repair`` ends them."""

from __future__ import annotations

import json
import signal

from valueloop.config import Settings
from valueloop.learn import tracking


def _doctor(settings: Settings, run_cli, *args: str) -> tuple[int, list[dict]]:
    done = run_cli(settings, "doctor", "--json", "--usecase", "churn", *args, as_user="oscar")
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)["findings"]


def test_a_training_killed_in_its_run_leaves_it_failed_after_repair(settings: Settings, churn, run_cli) -> None:
    killed = run_cli(settings, "train", "churn", as_user="dana", env={"VALUELOOP_TEST_CRASH_AT": "after-mlflow-run-start"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    code, found = _doctor(settings, run_cli)
    assert code == 1 and [f["kind"] for f in found] == ["pending intent", "MLflow run RUNNING"]
    code, found = _doctor(settings, run_cli, "--repair")
    assert code == 0 and all(f["repaired"] for f in found)
    client = tracking.client(settings)
    runs = client.search_runs([client.get_experiment_by_name("churn").experiment_id])
    assert [(r.info.status, r.data.tags[tracking.TAG + "error"]) for r in runs] == [
        ("FAILED", "its process died; ended by valueloop doctor")]
    assert _doctor(settings, run_cli) == (0, [])


def test_a_model_registered_by_a_killed_training_is_never_listed(settings: Settings, churn, run_cli) -> None:
    killed = run_cli(settings, "train", "churn", as_user="dana",
                     env={"VALUELOOP_TEST_CRASH_AT": "after-mlflow-registration"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert json.loads(run_cli(settings, "models", "churn", "--json", as_user="olivia").stdout) == []

    # the next training says what it found among the objects it touches, repairs nothing, uses none of it
    trained = run_cli(settings, "train", "churn", "--json", as_user="dana")
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["registered"]["version"] == 2
    assert "doctor: unknown model version model churn version 1: registered from run" in trained.stderr
    assert "doctor: pending intent mlflow training" in trained.stderr and "doctor --usecase churn --repair" in trained.stderr

    code, found = _doctor(settings, run_cli)
    assert code == 1 and [f["kind"] for f in found] == ["pending intent", "unknown model version"]
    assert found[1]["target"] == "model churn version 1"
    assert _doctor(settings, run_cli, "--repair")[0] == 0
    assert tracking.TAG + "orphaned" in tracking.client(settings).get_model_version("churn", "1").tags
    listed = run_cli(settings, "models", "churn", "--json", as_user="olivia")
    assert listed.returncode == 0, listed.stderr
    assert [m["version"] for m in json.loads(listed.stdout)] == [2]
    assert _doctor(settings, run_cli) == (0, [])
