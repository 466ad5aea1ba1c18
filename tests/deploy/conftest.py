"""Fixtures of the Deploy tests: one trained workspace and one server for the session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from deploy_support import Served, make_usecase, start_server, train_version

from valueloop.config import Settings, load_settings


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, list[int]]:
    """One workspace for the serving tests (training is the slow part): versions 1 and 2 of the
    churn model, version 1 the champion; tests that change aliases put them back."""
    root = tmp_path_factory.mktemp("deploy")
    settings = load_settings({"VALUELOOP_HOME": str(root / "home")})
    make_usecase(settings, root / "workspace")
    first = train_version(settings, "champion")
    second = train_version(settings, None)
    return settings, [first, second]


@pytest.fixture(scope="session")
def served(workspace: tuple[Settings, list[int]]) -> Iterator[Served]:
    """The server with authentication on; ``tokens`` holds one for dana (a member of the use
    case), eve (a member who may label) and zoe (a user with no role on it)."""
    from valueloop.outcomes.users import NewUser, add_user, create_token
    from valueloop.store import session

    settings, versions = workspace
    server, thread, url = start_server(settings)
    with session(settings) as s:
        add_user(s, "admin", NewUser(name="zoe"))
        tokens = {u: create_token(s, u, f"t-{uuid.uuid4().hex[:6]}").token for u in ("dana", "eve", "zoe")}
    yield Served(settings, url, versions, server, thread, tokens)
    server.should_exit = True  # type: ignore[attr-defined]
    thread.join(10)
