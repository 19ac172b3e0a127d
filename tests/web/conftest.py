"""A real headless Chromium (Debian's `chromium`) driven by Playwright, and real servers.

Playwright's own browser download is not reachable here: the browser is the system one,
installed by scripts/install_services.sh. Each page records its console errors and
uncaught exceptions; a test ends by asserting there were none (``PageErrors``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from tests.support.server import ServerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
API_KEY = "web-test-key-0123456789"
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 390, "height": 844}
UI_TIMEOUT_MS = 60_000  # a job's whole run on a shared two-core machine fits in this
expect.set_options(timeout=UI_TIMEOUT_MS)


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver for this folder's tests."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """The system Chromium, headless."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install_services.sh", pytrace=False)
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture(scope="package")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`forgesyte serve` without an API key (two workers, the testkit pipelines too)."""
    server = ServerProcess(tmp_path_factory.mktemp("web"), workers=2).start()
    yield server
    server.terminate()


@pytest.fixture(scope="package")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`forgesyte serve` with FORGESYTE_API_KEY set."""
    server = ServerProcess(
        tmp_path_factory.mktemp("web-keyed"), workers=1, env={"FORGESYTE_API_KEY": API_KEY}
    ).start()
    yield server
    server.terminate()


@dataclass
class PageErrors:
    """What a page reported: console errors and uncaught exceptions."""

    console: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)

    def unexpected(self, allowed: Callable[[str], bool] = lambda _: False) -> list[str]:
        """Every error except the console messages ``allowed`` accepts."""
        return [m for m in self.console if not allowed(m)] + self.exceptions


OpenPage = Callable[..., tuple[Page, PageErrors]]


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """Open the page of a server in a fresh browser context (its own sessionStorage)."""
    contexts = []

    def open_at(url: str, viewport: dict[str, int] = WIDE) -> tuple[Page, PageErrors]:
        context = browser.new_context(viewport=viewport, accept_downloads=True)
        context.set_default_timeout(UI_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        errors = PageErrors()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                errors.console.append(f"{message.text} ({message.location.get('url', '')})")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: errors.exceptions.append(str(exc)))
        page.goto(url)
        return page, errors

    yield open_at
    for context in contexts:
        context.close()
