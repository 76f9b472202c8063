"""A real headless browser for the tests that load pages: Debian's ``chromium``, driven by Playwright.

``make browser-deps`` installs chromium (``make test`` and ``make e2e`` run it first); Playwright's
own browser downloads are never used. Where chromium is missing, every test using these fixtures
is skipped, saying why.

Two fixtures, which ``tests/e2e/conftest.py`` makes available to the e2e tier:

``browser``
    One headless Chromium, launched on first use in a test module and closed at its end. Not per
    session: while Playwright's synchronous API is running, the test process's main thread
    counts as inside an event loop and ``asyncio.run`` raises, which would break the
    ``asyncio.run`` tests of the tiers that run after a browser test.
``browser_page``
    A :class:`BrowserPage` per test: a page in a fresh browser context (no cookies, storage or
    cache shared with other tests) that records console errors and uncaught exceptions::

        from playwright.sync_api import expect

        def test_counter_rises(browser_page: BrowserPage) -> None:
            page = browser_page.page                      # a playwright.sync_api.Page
            page.goto(dashboard_url)
            expect(page.locator("#users-now")).to_have_text("1", timeout=2000)
            browser_page.screenshot("counter")            # -> <artefacts>/<test>-counter.png
            browser_page.assert_no_errors()

    Playwright hands the browser's events (console messages included) to Python only while one
    of its calls is under way; ``assert_no_errors`` waits a moment through Playwright for that.

When a test fails, its page is saved as ``<test>-failed.png`` and the page's console is shown
with the failure. Screenshots go to ``$PERFPLAT_ARTEFACTS`` if it is set, else
``var/test-artefacts/`` under the repository (ignored by git).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, sync_playwright

REPO = Path(__file__).resolve().parents[2]
DEBIAN_CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 10_000
"""Playwright's wait for an element or a navigation (its own default is 30 s)."""


def chromium_path() -> str | None:
    """Debian's chromium, or ``None`` when it is not installed."""
    found = shutil.which("chromium")
    if found:
        return found
    return DEBIAN_CHROMIUM if os.access(DEBIAN_CHROMIUM, os.X_OK) else None


def artefacts_dir() -> Path:
    """Where screenshots go (created on demand): ``$PERFPLAT_ARTEFACTS`` or ``var/test-artefacts``."""
    path = Path(os.environ.get("PERFPLAT_ARTEFACTS") or REPO / "var" / "test-artefacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class BrowserPage:
    """One test's page, and what went wrong on it.

    ``console`` holds every console message as ``"<type>: <text>"``; ``errors`` the console errors
    (``console.error``, resources that failed to load, CORS refusals) and uncaught exceptions, which
    :meth:`assert_no_errors` asserts there were none of.
    """

    page: Page
    name: str
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("console", self._on_console)
        self.page.on("pageerror", self._on_page_error)

    def _on_console(self, message: ConsoleMessage) -> None:
        line = f"{message.type}: {message.text}"
        self.console.append(line)
        if message.type == "error":
            self.errors.append(f"console {line} (at {message.location.get('url', '?')})")

    def _on_page_error(self, error: Error) -> None:
        self.console.append(f"uncaught: {error.message}")
        self.errors.append(f"uncaught {error.name}: {error.message}")

    def screenshot(self, label: str, full_page: bool = True) -> Path:
        """Save the page as ``<artefacts>/<test>-<label>.png``; return the path."""
        path = artefacts_dir() / f"{self.name}-{_safe(label)}.png"
        self.page.screenshot(path=path, full_page=full_page)
        return path

    def assert_no_errors(self, settle_ms: int = 200) -> None:
        """Assert nothing went wrong on the page. Waits ``settle_ms`` first: Playwright delivers
        the browser's events to these lists only while a Playwright call is under way."""
        self.page.wait_for_timeout(settle_ms)
        assert self.errors == [], "errors on the page:\n" + "\n".join(self.errors)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:150]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        pytest.skip("chromium is not installed (`make browser-deps` installs Debian's package)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=path,
            headless=True,
            # the sandbox cannot start as root; /dev/shm is small in containers
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def browser_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[BrowserPage]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield BrowserPage(context.new_page(), _safe(f"{request.node.module.__name__}-{request.node.name}"))
    finally:
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's page: saved as ``<test>-failed.png``, its console added to the report. (The
    conftest that imports the fixtures imports this hook too.)"""
    report = yield
    watched = getattr(item, "funcargs", {}).get("browser_page")
    if call.when == "call" and report.failed and isinstance(watched, BrowserPage):
        try:
            shot = f"saved as {watched.screenshot('failed')}"
        except Error as exc:  # a crashed or closed page: its console still helps
            shot = f"not saved: {exc.message}"
        report.sections.append(("page screenshot", shot))
        report.sections.append(("page console", "\n".join(watched.console) or "(empty)"))
    return report
