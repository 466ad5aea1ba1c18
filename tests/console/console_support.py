"""The console under test: a seeded workspace, a real ``valueloop server`` on loopback, and a
Chromium page per signed-in user that fails its test on a console error, an unexpected 4xx/5xx,
a page left without a screenshot, or a serious/critical axe-core violation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from deploy_support import free_port, wait_until_ready
from playwright.sync_api import Browser, ConsoleMessage, Page, Response

from valueloop.config import Settings
from valueloop.demo.outcomes import PEOPLE
from valueloop.examples import example_dir
from valueloop.outcomes import privacy, usecases, users
from valueloop.outcomes.lifecycle import State
from valueloop.outcomes.spec import ColumnTreatment, load_spec, parse_spec
from valueloop.store import session

#: where each visited page's screenshot goes: the committed docs/screenshots (the README's) when
#: VALUELOOP_UPDATE_SCREENSHOTS=1, else a folder of the run's own, so a test run leaves the tree clean
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots" \
    if os.environ.get("VALUELOOP_UPDATE_SCREENSHOTS") == "1" else Path(tempfile.mkdtemp(prefix="valueloop-shots-"))
AXE = Path(__file__).with_name("axe.min.js")
#: axe-core impacts a page may not have
BLOCKING = ("serious", "critical")


def password_of(user: str) -> str:
    return f"loop-{user}-secret"


def example_yaml(name: str, title: str) -> str:
    """The churn example's file under another name and title: a second use case of the team."""
    text = (example_dir("churn") / "valueloop.yaml").read_text()
    text = re.sub(r"(?m)^name: churn$", f"name: {name}", text)
    return re.sub(r"(?m)^title: .*$", f"title: {title}", text)


def seed_outcomes(settings: Settings) -> None:
    """The demo's people with passwords, ``churn`` waiting for the privacy officer, and
    ``retention`` in production (its DPIA approved with a condition)."""
    spec = load_spec(example_dir("churn") / "valueloop.yaml")
    live = parse_spec({**spec.model_dump(mode="json"), "name": "retention", "title": "Retention offers"})
    with session(settings) as s:
        for name in PEOPLE:
            users.add_user(s, "admin", users.NewUser(name=name, email=f"{name}@example.com"))
        users.appoint(s, "admin", "pia", privacy_officer=True)
        for name in PEOPLE:
            users.set_password(s, "admin", name, password_of(name))
        usecases.create_usecase(s, "olivia", spec)
        usecases.advance(s, "ana", "churn", State.formulated)
        privacy.submit(s, "ana", "churn")
        usecases.create_usecase(s, "olivia", live)
        usecases.advance(s, "ana", "retention", State.formulated)
        privacy.submit(s, "ana", "retention")
        condition = ColumnTreatment(column="postcode", treatment="generalize", params={"prefix": 2})
        privacy.approve(s, "pia", "retention", [condition], "postcodes cut to their region")
        usecases.advance(s, "olivia", "retention", State.in_development)
        usecases.advance(s, "oscar", "retention", State.in_production)


@contextmanager
def running_server(settings: Settings, log: Path) -> Iterator[str]:
    """``valueloop server`` on a loopback port (no scheduler), until the block ends."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALUELOOP_")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "valueloop", "server", "--host", "127.0.0.1", "--port", str(port),
             "--no-scheduler"], env={**env, **settings.as_env()}, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process, 180, path="/health")  # a readiness wait, not a measurement
        if process.poll() is not None:
            pytest.fail(f"valueloop server exited with {process.returncode}:\n{log.read_text()}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


@dataclass
class Visit:
    """One person's browser tab on the console, watched for what a test must not let pass."""

    page: Page
    url: str
    user: str
    prefix: str
    errors: list[str] = field(default_factory=list)
    expected: list[int] = field(default_factory=list)
    unshot: set[str] = field(default_factory=set)
    shots: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.on("response", self._response)
        self.page.on("framenavigated", lambda frame: frame == self.page.main_frame
                     and self.unshot.add(self._where(frame.url)))

    def _where(self, url: str) -> str:
        return url.removeprefix(self.url)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not self._expected_refusal(message.text):
            self.errors.append(f"console error: {message.text}")

    def _expected_refusal(self, text: str) -> bool:
        """Chromium logs every 4xx as a console error; one the test expects is no error."""
        return any(f"status of {status}" in text for status in self.expected)

    def _response(self, response: Response) -> None:
        if response.status >= 400 and response.status not in self.expected:
            self.errors.append(f"unexpected {response.status} for {response.request.method} "
                               f"{self._where(response.url)}")

    @contextmanager
    def expecting(self, status: int) -> Iterator[None]:
        """A refusal the test provokes on purpose."""
        self.expected.append(status)
        try:
            yield
        finally:
            self.expected.remove(status)

    def goto(self, path: str, shot: str) -> Page:
        self.page.goto(self.url + path)
        self.shot(shot)
        return self.page

    def follow(self, link: str, path: str, shot: str) -> Page:
        """Click the link named ``link``, wait for ``path`` and screenshot it."""
        self.page.get_by_role("link", name=link).first.click()
        self.page.wait_for_url(self.url + path)
        self.shot(shot)
        return self.page

    def shot(self, name: str) -> Path:
        """Save the page as it is now into docs/screenshots and check its accessibility."""
        self.page.wait_for_load_state("load")
        path = SCREENSHOTS / f"{self.prefix}-{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        self.unshot.discard(self._where(self.page.url))
        self.check_accessibility(name)
        return path

    def check_accessibility(self, name: str) -> None:
        if self.page.evaluate("typeof axe") == "undefined":
            # evaluated by the DevTools protocol, which the page's CSP does not govern
            self.page.evaluate(AXE.read_text())
        result = self.page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        bad = [v for v in result["violations"] if v["impact"] in BLOCKING]
        assert not bad, f"{name}: accessibility violations:\n" + json.dumps(
            [{"id": v["id"], "impact": v["impact"], "help": v["help"],
              "nodes": [n["target"] for n in v["nodes"]]} for v in bad], indent=1)

    def finish(self) -> None:
        assert not self.errors, "\n".join(self.errors)
        assert not self.unshot, f"pages visited without a screenshot: {sorted(self.unshot)}"


@dataclass
class Console:
    """The running console of one test and what opens a signed-in tab on it."""

    url: str
    settings: Settings
    browser: Browser
    visits: list[Visit] = field(default_factory=list)

    def open(self, prefix: str, user: str = "") -> Visit:
        """A new browser context on the sign-in page, not signed in yet."""
        context = self.browser.new_context(viewport={"width": 1280, "height": 860})
        visit = Visit(context.new_page(), self.url, user, prefix)
        self.visits.append(visit)
        visit.page.goto(self.url + "/signin")
        return visit

    def sign_in(self, user: str, prefix: str, *, shot_signin: bool = False) -> Visit:
        """A new browser context signed in as ``user`` through the sign-in form."""
        visit = self.open(prefix, user)
        if shot_signin:
            visit.shot("signin")
        else:
            visit.unshot.clear()
        visit.page.get_by_label("User name").fill(user)
        visit.page.get_by_label("Password", exact=True).fill(password_of(user))
        visit.page.get_by_role("button", name="Sign in", exact=True).click()
        visit.page.wait_for_url(self.url + "/")
        return visit

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, timeout=60, **kwargs)
