"""Every console page, and its JSON twin, on an empty workspace: before anyone but the admin
exists, for a person with no use case, and for a use case that was only just written down."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from valueloop.config import Settings
from valueloop.console.web import SESSION_COOKIE

#: the pages of a workspace without use cases
WORKSPACE_PAGES = ("/", "/usecases", "/usecases/new", "/audit", "/admin")
#: the pages of one use case
USECASE_PAGES = ("", "/privacy", "/data", "/models", "/deploy", "/operate", "/edit")


def _open_every(client: TestClient, secret: str, paths: list[str]) -> None:
    for address in paths:
        path, query = address.partition("?")[::2]
        for twin in ("", ".json"):
            url = ((path.rstrip("/") or "/index") + twin if twin else path) + (f"?{query}" if query else "")
            answer = client.get(url, cookies={SESSION_COOKIE: secret})
            assert answer.status_code == 200, (url, answer.status_code, answer.text[:400])
            if twin:
                assert isinstance(answer.json(), dict), url
            else:
                assert "<main" in answer.text and 'aria-label="Main"' in answer.text, url


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_every_page_opens_on_an_empty_workspace(settings: Settings) -> None:
    from valueloop.demo.outcomes import PEOPLE
    from valueloop.examples import example_dir
    from valueloop.outcomes import usecases, users
    from valueloop.outcomes.spec import load_spec
    from valueloop.security.sessions import sign_in
    from valueloop.server.app import create_app
    from valueloop.store import session

    settings.home.mkdir(parents=True, exist_ok=True)
    with session(settings) as s:  # the first person, who becomes the admin
        users.add_user(s, None, users.NewUser(name="admin", email="admin@example.com"))
        users.set_password(s, "admin", "admin", "admin-secret-1")
        admin = sign_in(s, name="admin", password="admin-secret-1").secret
    with TestClient(create_app(settings)) as client:
        _open_every(client, admin, list(WORKSPACE_PAGES))  # nobody else, nothing at all

        with session(settings) as s:
            for name in (p for p in PEOPLE if p != "admin"):
                users.add_user(s, "admin", users.NewUser(name=name, email=f"{name}@example.com"))
            users.set_password(s, "admin", "olivia", "olivia-secret-1")
        with session(settings) as s:
            owner = sign_in(s, name="olivia", password="olivia-secret-1").secret
        _open_every(client, owner, list(WORKSPACE_PAGES))  # a person with no use case yet

        with session(settings) as s:
            usecases.create_usecase(s, "olivia", load_spec(example_dir("churn") / "valueloop.yaml"))
        _open_every(client, owner, [*WORKSPACE_PAGES, *(f"/usecases/churn{p}" for p in USECASE_PAGES),
                                    "/audit?usecase=churn"])
        _open_every(client, admin, [f"/usecases/churn{p}" for p in USECASE_PAGES if p != "/edit"])
