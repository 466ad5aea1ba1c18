"""Fixtures of the browser tests: a seeded workspace (made once per database, copied per test), a
real ``valueloop server`` on it, Debian's Chromium driven by Playwright, and signed-in tabs.

A test module that needs more in its workspace overrides ``console_seed`` with a function of
the settings (it runs after :func:`console_support.seed_outcomes` has made the people and the
use cases), e.g. one that ingests and trains the ``retention`` use case.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from console_support import SCREENSHOTS, Console, running_server, seed_outcomes
from playwright.sync_api import Browser, sync_playwright

from valueloop.config import Settings


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium (``apt install chromium``), headless; as root it needs --no-sandbox.

    One per module, not per session: Playwright's sync API keeps an asyncio loop running in the
    main thread while it is started, and every later test of the run that calls ``asyncio.run``
    (the micro-batcher's, tritonclient's aio client) would fail."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed: scripts/test installs it with apt")
    with sync_playwright() as playwright:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=args)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def console_seed() -> Callable[[Settings], None] | None:
    """What a test module adds to the seeded workspace; none by default."""
    return None


@pytest.fixture(scope="module")
def console_home(new_settings: Callable[[Path], Settings], tmp_path_factory: pytest.TempPathFactory,
                 console_seed: Callable[[Settings], None] | None) -> Settings:
    """The workspace seeded once for the tests of a module on this database."""
    settings = new_settings(tmp_path_factory.mktemp("console-seed") / "home")
    settings.home.mkdir(parents=True, exist_ok=True)  # on PostgreSQL nothing else makes it
    seed_outcomes(settings)
    if console_seed is not None:
        console_seed(settings)
    return settings


@pytest.fixture
def console(console_home: Settings, settings: Settings, copy_home: Callable[[Settings, Settings], None],
            browser: Browser, tmp_path: Path) -> Iterator[Console]:
    """A running console on a copy of the seeded workspace; every tab it opened is checked at the
    end (console errors, unexpected 4xx/5xx, pages without a screenshot)."""
    copy_home(console_home, settings)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running_server(settings, tmp_path / "server.log") as url:
        running = Console(url, settings, browser)
        yield running
        for visit in running.visits:
            visit.page.context.close()
        for visit in running.visits:
            visit.finish()
