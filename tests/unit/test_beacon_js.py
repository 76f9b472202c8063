"""The browser beacon (``producers/beacon``): its Node tests pass, the committed minified file is
built from the current source and stays within 5 KB minified and gzipped, and what it sends by
each transport passes the server's own validation."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from pipeline.beacon import Limits, Visit, check_content_type, parse_body, query_event, validate_events

BEACON = Path(__file__).resolve().parents[2] / "producers" / "beacon"
SOURCE = BEACON / "beacon.js"
DIST = BEACON / "dist" / "beacon.min.js"
MAX_GZIP_BYTES = 5120

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(
    NODE is None, reason="node is not installed: the beacon's JS tests need Node 18+"
)


@needs_node
def test_the_node_test_suite_passes() -> None:
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--test", "test/"], cwd=BEACON, capture_output=True, text=True, timeout=120, check=False
    )
    summary = dict(re.findall(r"^# (tests|pass|fail) (\d+)$", done.stdout, re.MULTILINE))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert int(summary["fail"]) == 0
    assert int(summary["pass"]) >= 100  # the suite ran, on both the source and the minified file


def test_the_minified_file_is_at_most_5_kb_gzipped() -> None:
    size = len(gzip.compress(DIST.read_bytes(), compresslevel=9))
    assert size <= MAX_GZIP_BYTES, f"beacon.min.js is {size} bytes gzipped"


def test_the_minified_file_names_the_current_source() -> None:
    """Needs neither node nor npm: the build writes the source's SHA-256 on the first line."""
    first_line = DIST.read_text().split("\n", 1)[0]
    match = re.search(r"sha256:([0-9a-f]{64})", first_line)
    assert match is not None, first_line
    assert match.group(1) == hashlib.sha256(SOURCE.read_bytes()).hexdigest(), (
        "producers/beacon/dist/beacon.min.js is out of date: run `make beacon` and commit it"
    )


@needs_node
def test_rebuilding_gives_the_committed_file_byte_for_byte() -> None:
    assert NODE is not None
    if not (BEACON / "node_modules" / "terser").is_dir():
        npm = shutil.which("npm")
        installed = npm is not None and (
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=BEACON,
                capture_output=True,
                timeout=300,
                check=False,
            ).returncode
            == 0
        )
        if not installed:
            pytest.skip("npm ci failed in producers/beacon (offline?): the source hash check still ran")
    done = subprocess.run(
        [NODE, "build.mjs", "--check"], cwd=BEACON, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


# What the script sends for a page with the markup, a click, over-long fields and an odd label,
# by each transport: printed by the script running in the tests' fake browser.
_EMIT = """
import { BUILDS, el, page } from './test/fake_browser.mjs';
const body = () => [
  el('main', { 'data-journey': 'Apply-Passport:stage:start' }),
  el('a', { 'data-journey-click': 'apply-passport:help:info:more & "quoted" é' }),
];
const out = {};
for (const [name, options] of Object.entries({
  beacon: {},
  fetch: { beacon: null },
  pixel: { beacon: null, fetch: null },
})) {
  const p = page({ body: body(), href: 'https://www.example.gov.uk/' + 'x'.repeat(2000), ...options });
  p.load(BUILDS.minified);
  p.click(p.find((e) => e.tagName === 'A'));
  p.perfplat.track('', 'a'.repeat(300), 'l'.repeat(900), 'page');
  p.perfplat.flush();
  out[name] = {
    beacon: p.sent.beacons.map((b) => b.body),
    fetch: p.sent.fetches.map((f) => [f.init.headers['Content-Type'], f.init.body]),
    pixel: p.sent.pixels,
  }[name];
}
console.log(JSON.stringify(out));
"""


@needs_node
def test_what_the_script_sends_is_what_the_server_accepts() -> None:
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", _EMIT],
        cwd=BEACON,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    sent = json.loads(done.stdout)
    visit = Visit(received_ms=1_700_000_000_000, salt=b"s" * 16, ip="192.0.2.1", user_agent="test")
    limits = Limits()

    bodies = [("text/plain;charset=UTF-8", body) for body in sent["beacon"]] + sent["fetch"]
    assert len(bodies) == 2
    for content_type, body in bodies:
        check_content_type(content_type)  # sendBeacon's type for a string body, fetch's header
        events, drops = validate_events(parse_body(body.encode(), limits), visit, limits)
        assert drops == []
        assert [(e.service, e.action, e.label, e.kind) for e in events] == [
            ("apply-passport", "stage", "start", "page"),
            ("apply-passport", "help", 'info:more & "quoted" é', "click"),
            ("apply-passport", "a" * 128, "l" * 512, "page"),
        ]
        assert {len(e.path) for e in events} == {1024}
        assert len({e.id for e in events}) == 3

    assert len(sent["pixel"]) == 3
    for url in sent["pixel"]:
        parts = urlsplit(url)
        assert parts.path == "/beacon.gif"
        events, drops = validate_events([query_event(dict(parse_qsl(parts.query)))], visit, limits)
        assert drops == []
        assert events[0].service == "apply-passport"
