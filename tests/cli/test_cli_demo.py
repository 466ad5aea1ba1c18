"""``valueloop demo`` runs the whole loop end to end in its own workspace."""

from __future__ import annotations

import json

from valueloop.config import load_settings


def test_the_demo_runs_end_to_end(settings, run_cli, tmp_path):
    workspace = tmp_path / "demo"
    result = run_cli(settings, "demo", "--workspace", str(workspace), timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "demo complete" in result.stdout
    assert "refused: dana may not decide privacy on use case 'churn': requires role privacy_officer" \
        in result.stdout
    # the demo keeps its state in its workspace, apart from the user's own home
    demo = load_settings({"VALUELOOP_HOME": str(workspace)})
    trail = json.loads(run_cli(demo, "audit", "churn", "--action", "privacy.approve", "--json",
                               as_user="admin").stdout)
    assert [(e["actor"], e["after"]["conditions"][0]["column"]) for e in trail] == [
        ("pia", "postcode"), ("pia", "postcode")]
    assert not settings.home.joinpath("valueloop.db").exists()
