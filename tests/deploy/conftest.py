"""Fixtures of the Deploy tests: one trained workspace for the session (training is the slow
part), one server per test module, and churn's serving state put back after every test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from deploy_support import (Served, baseline_state, registry_state, restore_baseline, served_state, start_server,
                            make_usecase, train_version)

from valueloop.config import Settings


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory,
              new_settings: Callable[[Path], Settings]) -> tuple[Settings, list[int]]:
    """Versions 1 and 2 of the churn model, version 1 the champion, and zoe, a user with no
    role on churn."""
    from valueloop.outcomes.users import NewUser, add_user
    from valueloop.store import session

    root = tmp_path_factory.mktemp("deploy")
    settings = new_settings(root / "home")
    make_usecase(settings, root / "workspace")
    first = train_version(settings, "champion")
    second = train_version(settings, None)
    with session(settings) as s:
        add_user(s, "admin", NewUser(name="zoe"))
    return settings, [first, second]


@pytest.fixture(scope="module")
def module_server(workspace: tuple[Settings, list[int]]) -> Iterator[Served]:
    """A server of this module's own with authentication on; ``tokens`` holds one for dana (a
    member of the use case), eve (a member who may label) and zoe (no role on it)."""
    from valueloop.outcomes.users import create_token
    from valueloop.store import session

    settings, versions = workspace
    server, thread, url = start_server(settings)
    with session(settings) as s:
        tokens = {u: create_token(s, u, f"t-{uuid.uuid4().hex[:6]}").token for u in ("dana", "eve", "zoe")}
    yield Served(settings, url, versions, server, thread, tokens)
    server.should_exit = True  # type: ignore[attr-defined]
    thread.join(10)


@pytest.fixture
def served(module_server: Served) -> Iterator[Served]:
    """The module's server, serving churn as the workspace made it (checked, so a test that
    changed it without the fixture is caught); whatever a test changes in aliases, canary or
    shadow is put back after it, and the server is seen serving the baseline again."""
    baseline = baseline_state(module_server)
    assert registry_state(module_server.settings) == baseline, "a test left churn's serving state changed"
    assert served_state(module_server.url, module_server.tokens["dana"]) == baseline
    yield module_server
    restore_baseline(module_server)
