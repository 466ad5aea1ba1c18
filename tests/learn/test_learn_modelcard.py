"""Model cards and the AI Act's high-risk gate: a high-risk use case enters production only with
its champion's card signed by the owner as it stands; a change of the card voids the sign-off."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_support import make_usecase, train_version

from valueloop.config import Settings, load_settings
from valueloop.errors import GateClosed, PermissionDenied
from valueloop.learn import modelcard
from valueloop.learn.registry import promote
from valueloop.outcomes import audit, privacy, usecases
from valueloop.outcomes.lifecycle import State
from valueloop.outcomes.spec import parse_spec
from valueloop.store import session

HIGH = {"risk": "high", "annex_iii": "essential_services", "log_retention": "365d",
        "oversight": {"who": "the retention team lead", "how": "approves every call list and can stop scoring"}}


@pytest.fixture(scope="module")
def high_risk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, int]:
    """churn assessed high-risk (DPIA approved), one champion; on SQLite, as the database is not
    what these tests are about."""
    root = tmp_path_factory.mktemp("modelcard")
    settings = load_settings({"VALUELOOP_HOME": str(root / "home")})
    make_usecase(settings, root / "workspace")
    with session(settings) as s:
        data = usecases.get_usecase(s, "churn").spec
        data["privacy"]["ai"] = HIGH
        usecases.update_usecase(s, "ana", parse_spec(data))
    with session(settings) as s:
        privacy.approve(s, "pia", "churn", comment="credit-like decision on essential services")
    return settings, train_version(settings, "champion", candidate="logistic")


def _to_production(settings: Settings) -> None:
    with session(settings) as s:
        usecases.advance(s, "devon", "churn", State.in_production, "champion served")


def test_a_high_risk_use_case_waits_for_the_owner_signed_card(high_risk, tmp_path: Path) -> None:
    settings, version = high_risk
    with pytest.raises(GateClosed) as closed:
        _to_production(settings)
    assert ("use case 'churn' is high-risk AI (Annex III: essential_services) and cannot enter in_production: "
            f"the champion v{version}'s model card is not signed by the owner") in str(closed.value)

    with pytest.raises(PermissionDenied, match="dana may not sign model card.*requires role owner"):
        with session(settings) as s:
            modelcard.sign(s, settings, "dana", "churn", version)
    with session(settings) as s:
        signed = modelcard.sign(s, settings, "olivia", "churn", version)
    assert signed.signed and signed.signed_by == "olivia"

    # the data scientist writes the limitations: the card changes, and the sign-off no longer holds
    with session(settings) as s:
        changed = modelcard.generate(s, settings, "dana", "churn", version,
                                     "Fails for <b>new</b> customers | tenure < 1 month")
    assert changed.digest != signed.digest and not changed.signed
    assert "Fails for &lt;b&gt;new&lt;/b&gt; customers \\| tenure &lt; 1 month" in changed.markdown
    assert "<b>new</b>" not in changed.html and "&lt;b&gt;new&lt;/b&gt;" in changed.html
    assert "the card changed since olivia signed it" in changed.markdown
    with pytest.raises(GateClosed, match=f"the champion v{version}'s model card changed since olivia signed it"):
        _to_production(settings)

    with session(settings) as s:
        modelcard.sign(s, settings, "olivia", "churn", version)
    _to_production(settings)
    with session(settings) as s:
        assert usecases.get_usecase(s, "churn").state == State.in_production
        actions = [e.action for e in audit.events(s, usecase="churn", action="modelcard.")]
    assert actions.count("modelcard.sign") == 2 and "modelcard.limitations" in actions

    # in production, a new champion needs its own signed card before it serves
    second = train_version(settings, None, candidate="logistic")
    with pytest.raises(GateClosed, match=f"high-risk AI in production: the champion's card must be signed first; "
                                         f"v{second}'s model card is not signed by the owner"):
        with session(settings) as s:
            promote(s, settings, "dana", "churn", second)
    with session(settings) as s:
        modelcard.sign(s, settings, "olivia", "churn", second)
        promote(s, settings, "dana", "churn", second)


def test_the_card_is_kept_with_the_version_in_mlflow(high_risk) -> None:
    settings, version = high_risk
    from valueloop.learn import tracking

    with session(settings) as s:
        card = modelcard.generate(s, settings, "eve", "churn", version)
    for section in ("## Intended use", "## Data", "## Training", "## Evaluation", "Per segment of contract",
                    "## Limitations and known failure cases", "## Human oversight", "## Monitoring plan",
                    "## Version history", "essential\\_services", "the retention team lead"):
        assert section in card.markdown, section
    rows = card.card.training.split["test_rows"]  # fewer than IMPORTANCE_ROWS: the sample is all of them
    assert f"permutation on a seeded sample of {rows} test rows, each column shuffled 3 times" in card.markdown
    assert f"seeded sample of {rows} test rows" in card.html
    stored = tracking.client(settings).download_artifacts(card.card.training.run_id, "model_card/card.md")
    assert Path(stored).read_text() == card.markdown



def test_the_command_and_the_routes(high_risk, run_cli, tmp_path: Path) -> None:
    """``valueloop modelcard`` writes the card; the control plane's routes generate it for the
    token's user, with the data scientist's limitations, and refuse a sign-off by anyone but the owner."""
    import threading

    import httpx
    import uvicorn
    from deploy_support import free_port, wait_for

    from valueloop.outcomes.users import create_token
    from valueloop.server.app import create_app

    settings, version = high_risk
    written = tmp_path / "card.html"
    done = run_cli(settings, "modelcard", "churn", str(version), "--html", "--output", str(written), as_user="eve")
    assert done.returncode == 0, done.stderr
    assert "<h2>Human oversight</h2>" in written.read_text() and "digest" in done.stderr

    with session(settings) as s:
        tokens = {u: create_token(s, u, f"card-{u}").token for u in ("dana",)}
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 60)
        url = f"http://127.0.0.1:{port}/api/usecases/churn/models/{version}/card"

        def post(path: str, user: str, **body: object) -> httpx.Response:
            return httpx.post(url + path, json=body, timeout=120,
                              headers={"Authorization": f"Bearer {tokens[user]}"})

        written = post("", "dana", limitations="Scores new customers poorly.")
        assert written.status_code == 200 and written.json()["card"]["limitations"] == "Scores new customers poorly."
        refused = post("/signoff", "dana")  # the owner's sign-off is the test above's, in any order
        assert refused.status_code == 403 and "requires role owner" in refused.text
    finally:
        server.should_exit = True
        thread.join(10)
