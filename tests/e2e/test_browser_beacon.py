"""The browser beacon in a real browser, end to end: a demo service's pages, marked up the
Stageprompt way and served from an origin of their own (``tests/support/pages``), load perfplat's
``/beacon.js`` from the API; loading a page and clicking send journey events across origins to
``POST /beacon``, through the broker and the worker into ClickHouse, and the API's journey figures
count each of them exactly once. Leaving a page sends what is still batched; a page running an
unmodified Stageprompt with perfplat's callback sends the same events. No page logs an error: a
CORS refusal or a failed request would show in the console.

On both stacks: ``perfplat api`` + ``perfplat worker`` on the session's broker and ClickHouse
server, and ``perfplat up`` (embedded broker and chdb).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from tests.conftest import unique
from tests.e2e.conftest import users_now
from tests.support.browser import BrowserPage
from tests.support.kpi_events import Target, stack_of, wait_until
from tests.support.pages.site import ServiceSite, install_stageprompt

pytestmark = pytest.mark.e2e

FIGURES_WITHIN_S = 30
"""How long a test waits for its events to show in the figures (they take a few seconds)."""


@pytest.fixture(scope="module", params=["embedded", "server"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """Each stack in turn (the first is stopped before the second starts)."""
    yield from stack_of(request, tmp_path_factory, "browser")


@pytest.fixture(scope="module")
def site(target: Target) -> Iterator[ServiceSite]:
    with ServiceSite(target.base_url) as s:
        yield s


@pytest.fixture
def service(target: Target) -> str:
    """A service of this test's own, registered through the admin API, clear of midnight UTC
    (the figures read are today's)."""
    now = datetime.now(UTC)
    to_midnight = (now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)) - now
    if to_midnight < timedelta(seconds=FIGURES_WITHIN_S + 10):
        time.sleep(to_midnight.total_seconds() + 1)
    slug = unique("browser")
    target.register(slug)
    return slug


@dataclass
class Sent:
    """One request the browser made to the beacon endpoint, as Chromium's network log saw it."""

    method: str
    kind: str
    """Chromium's resource type: ``Ping`` for sendBeacon (a CORS preflight would be an OPTIONS)."""
    content_type: str
    body: str
    status: int | None = None
    failure: str | None = None


class Beacons:
    """The requests a page made to ``POST /beacon``, from Chromium's own network log, which also
    shows CORS preflights (Playwright's request events leave them out). Beacons sent while a
    page is being left are missing from it: Chromium sends them, but no longer reports them."""

    def __init__(self, watched: BrowserPage, endpoint: str) -> None:
        self.page = watched.page
        self.endpoint = endpoint
        self.by_id: dict[str, Sent] = {}
        cdp = watched.page.context.new_cdp_session(watched.page)
        cdp.on("Network.requestWillBeSent", self._request)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.loadingFailed", self._failed)
        cdp.send("Network.enable")

    def _request(self, params: dict[str, Any]) -> None:
        request = params["request"]
        if request["url"] == self.endpoint:
            headers = {k.lower(): v for k, v in request.get("headers", {}).items()}
            self.by_id[params["requestId"]] = Sent(
                request["method"],
                params.get("type", ""),
                headers.get("content-type", ""),
                "".join(e.get("bytes", "") for e in request.get("postDataEntries", [])),
            )

    def _response(self, params: dict[str, Any]) -> None:
        if params["requestId"] in self.by_id:
            self.by_id[params["requestId"]].status = params["response"]["status"]

    def _failed(self, params: dict[str, Any]) -> None:
        if params["requestId"] in self.by_id:
            self.by_id[params["requestId"]].failure = params.get("errorText", "failed")

    @property
    def sent(self) -> list[Sent]:
        self.page.wait_for_timeout(100)  # Playwright hands over events only during its own calls
        return list(self.by_id.values())

    def batches(self) -> list[list[dict[str, Any]]]:
        """The events of each request, in the order they were sent."""
        return [orjson.loads(base64.b64decode(s.body)) for s in self.sent]

    def events(self) -> list[dict[str, Any]]:
        return [e for batch in self.batches() for e in batch]

    def assert_simple_requests(self) -> None:
        """Each a sendBeacon POST of text/plain (a CORS "simple" request), accepted; no preflight."""
        assert self.sent, "no beacon was sent"
        for s in self.sent:
            assert (s.method, s.kind, s.status, s.failure) == ("POST", "Ping", 202, None), s
            assert s.content_type.startswith("text/plain"), s


FIGURES = ("starts", "dones", "completion_rate", "stages", "help", "help_other", "errors")


def journey(target: Target, service: str) -> dict[str, Any]:
    doc = target.get(f"/services/{service}/journey", period="day")
    return {k: doc[k] for k in FIGURES}


def funnel(starts: int, dones: int) -> list[dict[str, Any]]:
    share = None if starts == 0 else dones / starts
    return [
        {"label": "start", "events": starts, "share_of_starts": None if starts == 0 else 1.0},
        {"label": "done", "events": dones, "share_of_starts": share},
    ]


def settle(target: Target, service: str, want: dict[str, Any]) -> None:
    """Wait until the service's journey figures are ``want``; then check they stay so (a late
    duplicate would change them)."""
    last: list[dict[str, Any]] = []

    def reached() -> bool:
        last[:] = [journey(target, service)]
        return last[0] == want

    try:
        wait_until(reached, FIGURES_WITHIN_S, 0.25)
    except AssertionError:
        raise AssertionError(f"journey figures {last[0] if last else None} never became {want}") from None
    time.sleep(1.5)  # a second batch (a double count) would have arrived by now
    assert journey(target, service) == want


# Clicks on the start page: two on one help link, one on the other.
HELP_CLICKS = ("#help-eligibility", "#help-eligibility", "#help-fees")
AFTER_HELP = {
    "starts": 1,
    "dones": 0,
    "completion_rate": 0.0,
    "stages": funnel(1, 0),
    "help": [{"label": "eligibility", "events": 2}, {"label": "fees", "events": 1}],
    "help_other": 0,
    "errors": [],
}


def test_page_load_and_clicks_reach_the_journey_figures(
    target: Target, site: ServiceSite, service: str, browser_page: BrowserPage
) -> None:
    page = browser_page.page
    beacons = Beacons(browser_page, target.base_url + "/beacon")
    page.goto(site.url("start.html", service))
    assert page.evaluate("typeof window.perfplat.track") == "function"
    for selector in HELP_CLICKS:
        page.click(selector)

    settle(target, service, AFTER_HELP)
    assert users_now(target.base_url, service) == 1
    beacons.assert_simple_requests()
    assert sorted((e["kind"], e.get("action"), e.get("label")) for e in beacons.events()) == [
        ("click", "help", "eligibility"),
        ("click", "help", "eligibility"),
        ("click", "help", "fees"),
        ("page", "stage", "start"),
    ]
    assert {e["category"] for e in beacons.events()} == {service}
    browser_page.screenshot("start-page")
    browser_page.assert_no_errors()


def test_leaving_a_page_sends_what_is_batched(
    target: Target, site: ServiceSite, service: str, browser_page: BrowserPage
) -> None:
    """The page's clock is paused, so the one-second batch timer never fires: whatever reaches
    the figures was sent because a page was left (for the next page of the service, then for
    another site)."""
    page = browser_page.page
    beacons = Beacons(browser_page, target.base_url + "/beacon")
    now = datetime.now(UTC)
    page.clock.install(time=now)
    page.clock.pause_at(now + timedelta(seconds=10))  # ahead of the clock, which runs until then
    page.goto(site.url("start.html", service))
    page.click("#help-fees")
    page.wait_for_timeout(1500)  # real time: the paused batch timer stays put
    assert beacons.sent == []

    page.click("#continue")  # to done.html, the service's last page
    page.wait_for_url("**/done.html?*")
    page.goto("about:blank")  # and away

    settle(
        target,
        service,
        {
            "starts": 1,
            "dones": 1,
            "completion_rate": 1.0,
            "stages": funnel(1, 1),
            "help": [{"label": "fees", "events": 1}],
            "help_other": 0,
            "errors": [],
        },
    )
    browser_page.assert_no_errors()


def test_alongside_an_unmodified_stageprompt_the_same_events_are_sent(
    target: Target, site: ServiceSite, service: str, browser_page: BrowserPage
) -> None:
    """Stageprompt's ``setup(perfplat.stagepromptCallback)``: its page-load callback is not sent a
    second time, and its click handlers take over from the script's own."""
    install_stageprompt()
    page = browser_page.page
    beacons = Beacons(browser_page, target.base_url + "/beacon")
    page.goto(site.url("stageprompt.html", service))
    assert page.evaluate("typeof GOVUK.performance.stageprompt.setup") == "function"
    for selector in HELP_CLICKS:
        page.click(selector)

    settle(target, service, AFTER_HELP)
    beacons.assert_simple_requests()
    assert len(beacons.events()) == 4
    browser_page.screenshot("stageprompt-page")
    browser_page.assert_no_errors()


def test_alongside_stageprompt_a_page_without_a_stage_sends_each_click_once(
    target: Target, site: ServiceSite, service: str, browser_page: BrowserPage
) -> None:
    install_stageprompt()
    page = browser_page.page
    beacons = Beacons(browser_page, target.base_url + "/beacon")
    page.goto(site.url("stageprompt-help.html", service))
    page.click("#help-eligibility")
    page.click("#help-fees")
    wait_until(lambda: beacons.sent, 5, 0.05)  # the batch, a second after the first click
    browser_page.assert_no_errors()
    assert [e.get("label") for e in beacons.events()] == ["eligibility", "fees"]
