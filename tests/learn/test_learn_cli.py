"""The Learn commands as a user runs them: a subprocess on the test's settings."""

from __future__ import annotations

import json

from valueloop.config import Settings


def test_train_accept_promote_from_the_command_line(settings: Settings, churn, run_cli) -> None:
    name, _ = churn
    trained = run_cli(settings, "train", name, "--json", as_user="dana")
    assert trained.returncode == 0, trained.stderr
    report = json.loads(trained.stdout)
    version = report["registered"]["version"]
    assert {r["candidate"] for r in report["results"]} == {"logistic", "lightgbm"}

    table = run_cli(settings, "train", name, "--candidate", "logistic", as_user="dana")
    assert table.returncode == 0, table.stderr
    assert "logistic" in table.stdout and "registered churn v" in table.stdout

    listed = run_cli(settings, "models", name, "--json", as_user="olivia")
    assert [m["version"] for m in json.loads(listed.stdout)] == [version, version + 1]

    refused = run_cli(settings, "promote", name, str(version), as_user="dana")
    assert refused.returncode == 7
    assert "cannot become champion: the owner has not accepted it" in refused.stderr
    assert "Traceback" not in refused.stderr

    accepted = run_cli(settings, "accept", name, str(version), "-m", "good enough to call customers",
                       as_user="olivia")
    assert accepted.returncode == 0, accepted.stderr
    assert "evaluation next to the targets" in accepted.stdout and "accepted" in accepted.stdout

    promoted = run_cli(settings, "promote", name, str(version), as_user="dana")
    assert promoted.returncode == 0, promoted.stderr
    assert f"{name} v{version} is now champion" in promoted.stdout

    runs = json.loads(run_cli(settings, "runs", name, "--json", as_user="dana").stdout)
    assert len(runs) == 3 and {r["status"] for r in runs} == {"finished"}
    again = run_cli(settings, "reproduce", runs[0]["run_id"], as_user="dana")
    assert again.returncode == 0, again.stderr
    assert "metrics match" in again.stdout

    bad = run_cli(settings, "train", name, "--candidate", "nope", as_user="dana")
    assert bad.returncode == 2 and "candidate: nope not declared" in bad.stderr
