"""Cookie-less visitor keys (``pipeline.visitor``): a stable 64-bit key per visitor, service and
UTC day; the salt rotates at midnight UTC and ``SaltCache`` serves the same salt as ``daily_salt``."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pipeline.visitor as visitor_module
from pipeline.visitor import SaltCache, client_ip, daily_salt, visitor_key

DAY_MS = 86_400_000
SECRET = b"test-secret"
NOON_MS = int(datetime(2024, 3, 10, 12, tzinfo=UTC).timestamp() * 1000)
MIDNIGHT_MS = int(datetime(2024, 3, 11, tzinfo=UTC).timestamp() * 1000)
SALT = daily_salt(SECRET, NOON_MS)

texts = st.text(max_size=40)
instants_ms = st.integers(min_value=0, max_value=2**42)


@given(ip=texts, ua=texts, service=texts, salt=st.binary(min_size=16, max_size=16))
def test_visitor_key_is_an_unsigned_64_bit_int(ip: str, ua: str, service: str, salt: bytes) -> None:
    key = visitor_key(salt, ip, ua, service)
    assert type(key) is int
    assert 0 <= key < 2**64
    assert visitor_key(salt, ip, ua, service) == key


def test_visitor_key_is_stable_across_processes() -> None:
    """No per-process randomness (``hash()``, a random seed): every ingest process agrees."""
    args = (SALT, "203.0.113.7", "Mozilla/5.0 (X11; Linux x86_64)", "checkout")
    code = (
        "from pipeline.visitor import visitor_key; "
        f"print(visitor_key({args[0]!r}, {args[1]!r}, {args[2]!r}, {args[3]!r}))"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        assert int(out.stdout) == visitor_key(*args)


@given(a=texts, b=texts, ua=texts, service=texts)
def test_visitor_key_differs_when_the_ip_differs(a: str, b: str, ua: str, service: str) -> None:
    if a != b:
        assert visitor_key(SALT, a, ua, service) != visitor_key(SALT, b, ua, service)


@given(ip=texts, a=texts, b=texts, service=texts)
def test_visitor_key_differs_when_the_user_agent_differs(ip: str, a: str, b: str, service: str) -> None:
    if a != b:
        assert visitor_key(SALT, ip, a, service) != visitor_key(SALT, ip, b, service)


@given(ip=texts, ua=texts, a=texts, b=texts)
def test_visitor_key_differs_when_the_service_differs(ip: str, ua: str, a: str, b: str) -> None:
    if a != b:
        assert visitor_key(SALT, ip, ua, a) != visitor_key(SALT, ip, ua, b)


@given(a=st.binary(min_size=16, max_size=16), b=st.binary(min_size=16, max_size=16))
def test_visitor_key_differs_when_the_salt_differs(a: bytes, b: bytes) -> None:
    if a != b:
        assert visitor_key(a, "203.0.113.7", "ua", "checkout") != visitor_key(
            b, "203.0.113.7", "ua", "checkout"
        )


def test_visitor_key_differs_on_the_next_day() -> None:
    args = ("203.0.113.7", "ua", "checkout")
    assert visitor_key(daily_salt(SECRET, NOON_MS), *args) != visitor_key(
        daily_salt(SECRET, NOON_MS + DAY_MS), *args
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("203.0.113.7\x00Mozilla", "x", "checkout"), ("203.0.113.7", "Mozilla\x00x", "checkout")),
        (("203.0.113.7", "\ud800", "checkout"), ("203.0.113.7", "\udc00", "checkout")),
    ],
    ids=["nul-shift", "lone-surrogates"],
)
def test_visitor_key_distinguishes_every_distinct_triple(
    first: tuple[str, str, str], second: tuple[str, str, str]
) -> None:
    assert first != second
    assert visitor_key(SALT, *first) != visitor_key(SALT, *second)


# --- the daily salt -----------------------------------------------------------------------------


def test_daily_salt_is_16_bytes_and_depends_on_the_secret() -> None:
    assert len(daily_salt(SECRET, NOON_MS)) == 16
    assert daily_salt(SECRET, NOON_MS) == daily_salt(SECRET, NOON_MS)
    assert daily_salt(SECRET, NOON_MS) != daily_salt(b"another-secret", NOON_MS)


@pytest.mark.parametrize(
    ("a_ms", "b_ms", "same"),
    [
        (MIDNIGHT_MS - DAY_MS, MIDNIGHT_MS - 1, True),  # first and last millisecond of a day
        (NOON_MS, MIDNIGHT_MS - 1, True),
        (MIDNIGHT_MS - 1, MIDNIGHT_MS, False),  # one millisecond across midnight UTC
        (MIDNIGHT_MS, MIDNIGHT_MS + DAY_MS - 1, True),
        (MIDNIGHT_MS, MIDNIGHT_MS + DAY_MS, False),
    ],
)
def test_daily_salt_changes_at_utc_midnight(a_ms: int, b_ms: int, same: bool) -> None:
    assert (daily_salt(SECRET, a_ms) == daily_salt(SECRET, b_ms)) is same


@given(now_ms=instants_ms)
def test_daily_salt_is_constant_within_a_utc_day(now_ms: int) -> None:
    day_start = now_ms - now_ms % DAY_MS
    salt = daily_salt(SECRET, now_ms)
    assert salt == daily_salt(SECRET, day_start)
    assert salt == daily_salt(SECRET, day_start + DAY_MS - 1)
    assert salt != daily_salt(SECRET, day_start + DAY_MS)
    assert salt != daily_salt(SECRET, day_start - 1)


# --- the salt cache -------------------------------------------------------------------------------


@given(moments=st.lists(instants_ms, min_size=1, max_size=20))
def test_salt_cache_serves_the_same_salt_as_daily_salt(moments: list[int]) -> None:
    cache = SaltCache(SECRET)
    for now_ms in moments:
        assert cache.salt(now_ms) == daily_salt(SECRET, now_ms)


def test_salt_cache_recomputes_after_midnight_and_not_before(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = visitor_module.daily_salt

    def counting(secret: bytes, now_ms: int) -> bytes:
        calls.append(now_ms)
        return real(secret, now_ms)

    monkeypatch.setattr(visitor_module, "daily_salt", counting)
    cache = SaltCache(SECRET)
    before = cache.salt(NOON_MS)
    assert cache.salt(NOON_MS + 1000) == before
    assert cache.salt(MIDNIGHT_MS - 1) == before
    assert len(calls) == 1, "one hash per day, not one per event"
    after = cache.salt(MIDNIGHT_MS)
    assert after != before
    assert after == real(SECRET, MIDNIGHT_MS)
    assert cache.salt(MIDNIGHT_MS + 1) == after
    assert len(calls) == 2
    # A clock stepping back across midnight gets yesterday's salt again, not today's.
    assert cache.salt(MIDNIGHT_MS - 1) == before


PROXIES = frozenset({"10.0.0.5", "10.0.0.6"})


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("198.51.100.7", None, "198.51.100.7"),  # no header: the peer
        ("198.51.100.7", "1.2.3.4", "198.51.100.7"),  # an untrusted peer's header is ignored
        ("10.0.0.5", "203.0.113.9", "203.0.113.9"),  # through our load balancer
        ("10.0.0.5", "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # a spoofed left-most hop is ignored
        ("10.0.0.5", "203.0.113.9, 10.0.0.6", "203.0.113.9"),  # two of our proxies in a row
        ("10.0.0.5", " , ", "10.0.0.5"),  # an empty header
        ("10.0.0.5", "10.0.0.6", "10.0.0.6"),  # only proxies: the left-most one
    ],
)
def test_client_ip_believes_forwarded_for_only_from_trusted_proxies(
    peer: str, forwarded: str | None, expected: str
) -> None:
    assert client_ip(peer, forwarded, PROXIES) == expected


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_ip("10.0.0.5", "203.0.113.9", frozenset()) == "10.0.0.5"
