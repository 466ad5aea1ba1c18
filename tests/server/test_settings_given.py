"""Settings are handed in, never read from the environment: the phases and the control plane work
on the settings they were given while every ``VALUELOOP_*`` variable points at a home elsewhere
and a config file that cannot load, so any read of them fails and any write shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import make_usecase, train_version, wait_for
from fastapi.testclient import TestClient

from valueloop.config import Settings, load_settings
from valueloop.errors import InvalidInput
from valueloop.outcomes.users import create_token
from valueloop.store import session


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The home the environment names; nothing may create it."""
    home = tmp_path / "elsewhere"
    broken = tmp_path / "broken.yaml"
    broken.write_text("no_such_setting: 1\n")
    for name, value in {"VALUELOOP_HOME": str(home), "VALUELOOP_CONFIG": str(broken),
                        "VALUELOOP_DATABASE_URL": f"sqlite:///{home}/valueloop.db",
                        "VALUELOOP_MLFLOW_URI": f"sqlite:///{home}/mlflow.db"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidInput):
        load_settings()  # what a read of the environment would meet
    yield home
    assert not home.exists()


def test_the_loop_runs_on_the_settings_it_is_given(settings: Settings, elsewhere: Path, tmp_path: Path) -> None:
    from valueloop.demo.deploy import REQUEST
    from valueloop.deploy.app import ServeOptions, create_app
    from valueloop.deploy.rollback import rollback
    from valueloop.operate.monitor import run_monitor

    make_usecase(settings, tmp_path / "workspace")  # outcomes, privacy and data
    first = train_version(settings)  # learn: train, accept, promote
    train_version(settings)
    with session(settings) as s:
        assert rollback(s, settings, "dana", "churn").champion == first
    assert run_monitor(settings, "oscar", "churn").windows == []
    with TestClient(create_app(settings, ServeOptions(auth=False))) as serving:  # deploy: REST serving
        wait_for(lambda: serving.get("/v2/health/ready").status_code == 200, 120)
        answer = serving.post("/predict/churn", json=REQUEST)
        assert answer.status_code == 200 and answer.json()["model_version"] == str(first), answer.text


def test_the_control_plane_reads_its_settings_once(settings: Settings, elsewhere: Path, tmp_path: Path) -> None:
    from valueloop.server.app import create_app

    make_usecase(settings, tmp_path / "workspace")
    with session(settings) as s:
        tokens = {who: create_token(s, who).token for who in ("olivia", "admin")}
    client = TestClient(create_app(settings))

    def get(path: str, who: str):  # type: ignore[no-untyped-def]
        answer = client.get(path, headers={"Authorization": f"Bearer {tokens[who]}"})
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert get("/api/me", "olivia")["name"] == "olivia"
    assert get("/api/audit/verify", "admin")["ok"] is True
    assert get("/api/usecases/churn/monitor", "olivia")["windows"] == []
    assert get("/api/usecases/churn/kpis", "olivia") == []
