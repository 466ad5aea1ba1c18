"""The console's foundation in a real browser: sign-in, the inbox, JSON twins, CSRF, sign-out,
and the API docs without internet."""

from __future__ import annotations

import re

import httpx
from console_support import Console, password_of


def _session_cookie(console: Console, user: str) -> tuple[httpx.Client, str]:
    """A plain HTTP client signed in through the form, and a CSRF token of its session."""
    client = httpx.Client(base_url=console.url, timeout=60)
    page = client.get("/signin")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    signed = client.post("/signin", data={"csrf": token, "name": user, "password": password_of(user)})
    assert signed.status_code == 303, signed.text
    inbox = client.get("/")
    return client, re.search(r'name="csrf" value="([^"]+)"', inbox.text).group(1)


def test_owner_signs_in_sees_the_inbox_and_signs_out(console: Console) -> None:
    visit = console.sign_in("olivia", "foundation", shot_signin=True)
    page = visit.page
    visit.shot("inbox")
    assert page.get_by_role("heading", name="Inbox", exact=True).is_visible()
    table = page.get_by_role("table").first
    assert "Predict customer churn" in table.inner_text()
    assert "Retention offers" in table.inner_text()
    twin = httpx.get(console.url + "/index.json", cookies=page.context.cookies()[0:0] or None)
    assert twin.status_code == 401  # the twin needs the session like the page
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    twin = httpx.get(console.url + "/index.json", cookies=cookies)
    assert twin.status_code == 200 and twin.json()["user"] == "olivia"
    assert {"privacy_review", "in_production"} <= set(twin.json()["usecases_by_state"])
    page.get_by_role("button", name="Sign out olivia").click()
    page.wait_for_url(console.url + "/signin")
    visit.shot("signed-out")
    # the session ended on the server: the old cookie opens nothing any more
    assert httpx.get(console.url + "/index.json", cookies=cookies).status_code == 401


def test_a_wrong_password_is_refused_on_the_page(console: Console) -> None:
    visit = console.open("foundation-wrong")
    visit.page.get_by_label("User name").fill("ana")
    visit.page.get_by_label("Password", exact=True).fill("not her password")
    with visit.expecting(401):
        visit.page.get_by_role("button", name="Sign in", exact=True).click()
        visit.page.get_by_role("alert").wait_for()
    visit.shot("signin-refused")
    assert "unknown user or wrong password" in visit.page.get_by_role("alert").inner_text()


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(console: Console) -> None:
    client, token = _session_cookie(console, "olivia")
    refused = client.post("/signout", data={})
    assert refused.status_code == 403
    assert "csrf" in refused.text
    assert client.get("/index.json").status_code == 200  # still signed in: nothing happened
    forged = client.post("/signout", data={"csrf": token[::-1]})
    assert forged.status_code == 403
    assert client.get("/index.json").status_code == 200
    assert client.post("/signout", data={"csrf": token}).status_code == 303
    assert client.get("/index.json").status_code == 401


def test_pages_carry_the_security_headers_and_the_cookie_its_flags(console: Console) -> None:
    client = httpx.Client(base_url=console.url, timeout=60)
    page = client.get("/signin")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    signed = client.post("/signin", data={"csrf": token, "name": "olivia", "password": password_of("olivia")})
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=" in cookie


def test_repeated_failed_sign_ins_are_throttled(console: Console) -> None:
    client = httpx.Client(base_url=console.url, timeout=60)
    answer = client.get("/signin")
    statuses = []
    for n in range(20):  # each answer is a fresh sign-in form with its own token
        token = re.search(r'name="csrf" value="([^"]+)"', answer.text).group(1)
        answer = client.post("/signin", data={"csrf": token, "name": "olivia", "password": f"guess-{n}"})
        statuses.append(answer.status_code)
    assert set(statuses) == {401}
    token = re.search(r'name="csrf" value="([^"]+)"', answer.text).group(1)
    right = client.post("/signin", data={"csrf": token, "name": "olivia", "password": password_of("olivia")})
    assert right.status_code == 429  # while it waits, the right password opens nothing either
    assert "too many failed authentications" in right.text


def test_the_api_docs_load_with_no_internet(console: Console) -> None:
    context = console.browser.new_context()
    page = context.new_page()
    outside: list[str] = []

    def only_loopback(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.url.startswith(console.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    page.goto(console.url + "/docs")
    page.get_by_role("heading", name=re.compile("valueloop control plane")).wait_for()
    assert not outside, f"the docs page reached outside: {outside}"
    context.close()
