"""The dashboards in a real browser, end to end, on both stacks (``perfplat up`` and ``perfplat api``
+ ``perfplat worker``): a service's page shows "users on the service now" rendered on the server,
then the counter rises without a reload within 2 s of the new figure being readable — over
Server-Sent Events, and by polling where the browser has no ``EventSource``. The home page's
platform-wide counter rises the same way. A service named with HTML and script in it is shown as
text and runs nothing. Screenshots of the pages are written as test artefacts; no page logs an
error (a blocked script or style under the pages' Content-Security-Policy would).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, expect

from tests.conftest import unique
from tests.e2e.conftest import users_now
from tests.support.browser import BrowserPage
from tests.support.kpi_events import Target, stack_of, wait_until
from tests.support.pages.site import AXE_JS, install_stageprompt
from tests.support.sse import Sse

pytestmark = pytest.mark.e2e

LIVE_WITHIN_MS = 2000
HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module", params=["embedded", "server"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """Each stack in turn (the first is stopped before the second starts)."""
    yield from stack_of(request, tmp_path_factory, "dash")


def visit(target: Target, service: str, visitors: int) -> None:
    """``visitors`` new visitors on ``service`` (each its own user agent), then wait until the
    users-now figure holds them: from then on the page has 2 s to show it."""
    before = users_now(target.base_url, service)
    for n in range(visitors):
        r = httpx.post(
            target.base_url + "/beacon",
            json={"category": service, "action": "stage", "label": "start"},
            headers={"user-agent": f"dashboard-e2e/{unique('ua')}/{n}"},
            timeout=10,
        )
        assert r.status_code == 202, r.text
    wait_until(lambda: users_now(target.base_url, service) >= before + visitors, 30, 0.05)


def count_of(page_text: str) -> int:
    return int(page_text.replace(",", ""))


def test_the_service_counter_rises_live_without_a_reload(target: Target, browser_page: BrowserPage) -> None:
    service = unique("dash")
    target.register(service, name=HOSTILE)
    page = browser_page.page
    dialogs: list[Dialog] = []
    page.on("dialog", lambda d: (dialogs.append(d), d.dismiss()))
    navigations: list[str] = []
    page.on("framenavigated", lambda f: navigations.append(f.url))

    page.goto(f"{target.base_url}/performance/{service}")
    counter = page.locator("[data-live-count]")
    expect(counter).to_have_text("0")
    expect(page.locator("[data-live-users]")).to_have_attribute("data-live-state", "live")  # subscribed
    assert page.locator("h1").inner_text() == HOSTILE  # shown as text
    assert page.title().startswith(HOSTILE)

    for total in (3, 5):
        visit(target, service, total - count_of(counter.inner_text()))
        expect(counter).to_have_text(str(total), timeout=LIVE_WITHIN_MS)

    assert navigations == [f"{target.base_url}/performance/{service}"]  # never reloaded
    assert dialogs == []  # the hostile name ran nothing
    assert page.locator(".pp-tile").count() >= 4
    browser_page.screenshot("service-dashboard")
    browser_page.assert_no_errors()


def test_without_event_source_the_counter_rises_by_polling(target: Target, browser_page: BrowserPage) -> None:
    service = unique("poll")
    target.register(service)
    page = browser_page.page
    page.add_init_script("delete window.EventSource;")
    page.goto(f"{target.base_url}/performance/{service}")
    expect(page.locator("[data-live-users]")).to_have_attribute("data-live-state", "polled")
    visit(target, service, 2)
    poll_ms = int(page.locator("[data-live-users]").get_attribute("data-poll-ms") or 0)
    expect(page.locator("[data-live-count]")).to_have_text("2", timeout=poll_ms + LIVE_WITHIN_MS)
    browser_page.assert_no_errors()


def test_the_home_page_counts_users_on_every_service_live(target: Target, browser_page: BrowserPage) -> None:
    services = [unique("home"), unique("home")]
    for s in services:
        target.register(s)
    page = browser_page.page
    page.goto(f"{target.base_url}/performance")
    expect(page.locator("[data-live-users]")).to_have_attribute("data-live-state", "live")
    counter = page.locator("[data-live-count]")
    start = count_of(counter.inner_text())
    for s in services:
        visit(target, s, 1)
    deadline = time.monotonic() + 30
    while users_now(target.base_url, None) < start + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    platform = users_now(target.base_url, None)
    assert platform >= start + 2
    expect(counter).to_have_text(f"{platform:,}", timeout=LIVE_WITHIN_MS)
    for s in services:  # each registered service has its row, linking to its page
        expect(page.locator(f'tr[data-service="{s}"] a')).to_have_attribute("href", f"/performance/{s}")
    browser_page.screenshot("home")
    browser_page.assert_no_errors()


def test_a_stream_asked_for_without_accept_is_streamed_on_both_stacks(target: Target) -> None:
    """``curl URL/live`` (no ``Accept: text/event-stream``) gets the stream, not an error, also
    through the embedded ingest process that relays the read side."""
    service = unique("curl")
    target.register(service)
    for path in ("/live", f"/services/{service}/live"):
        with httpx.Client(base_url=target.base_url, timeout=10) as client, client.stream("GET", path) as r:
            assert r.status_code == 200, r.read()
            assert r.headers["content-type"].startswith("text/event-stream")
            sse = Sse(r)
            assert sse.frame() == {"retry": "3000"}
            figures, _ = sse.figures()
            assert "users_now" in figures


AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def test_the_pages_pass_an_accessibility_check(target: Target, browser: Browser) -> None:
    """axe-core (WCAG 2.1 A and AA rules: contrast, labels, landmarks, headings, tables) finds
    nothing on the home, service and department pages, with the funnel and help charts shown."""
    install_stageprompt()  # the test pages' npm folder also holds axe-core
    service, group = unique("a11y"), unique("dept")
    target.register(service, group=group)
    for label in ("start", "details", "done"):
        httpx.post(target.base_url + "/beacon", json={"category": service, "action": "stage", "label": label})
    httpx.post(target.base_url + "/beacon", json={"category": service, "action": "help", "label": "fees"})
    wait_until(
        lambda: httpx.get(f"{target.base_url}/services/{service}/journey?period=day").json()["help"] != [], 30
    )
    context = browser.new_context(bypass_csp=True)  # to inject axe; the pages' own CSP is tested elsewhere
    try:
        page = context.new_page()
        for path in ("/performance", f"/performance/{service}", f"/performance/{group}"):
            page.goto(target.base_url + path)
            page.add_script_tag(path=str(AXE_JS))
            result = page.evaluate(
                "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS
            )
            violations = [
                (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]
            ]
            assert violations == [], (path, violations)
            assert len(result["passes"]) > 10, path  # it did check the page
    finally:
        context.close()


def test_without_javascript_everything_but_live_updates_works(target: Target, browser: Browser) -> None:
    service = unique("nojs")
    target.register(service)
    visit(target, service, 1)
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{target.base_url}/performance/{service}")
        expect(page.locator("[data-live-count]")).to_have_text("1")  # rendered on the server
        expect(page.locator(".pp-tile")).not_to_have_count(0)
        assert page.locator("svg.pp-chart").count() >= 3
        table = page.locator("details.pp-chart-table").first
        table.locator("summary").click()  # native disclosure, no script
        expect(table.locator("table")).to_be_visible()
        page.get_by_role("link", name="This month so far").click()
        assert page.url.endswith(f"/performance/{service}?period=month")
        csv_href = page.locator("a[download]").first.get_attribute("href")
        assert csv_href == f"/performance/{service}/volumes.csv?period=month"
        r = page.request.get(target.base_url + csv_href)
        assert r.status == 200 and r.text().startswith("_start_at,_end_at,digital")
    finally:
        context.close()
