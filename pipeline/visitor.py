"""Cookie-less visitor keys.

A visitor is ``blake2b(daily_salt ‖ ip ‖ user agent ‖ service)`` cut to 64 bits. The salt is
``HMAC-SHA256(secret, UTC date)``, so it rotates at midnight UTC and every ingest process that
shares the secret derives the same key. The raw IP is never stored or sent on: only the key is.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime


def daily_salt(secret: bytes, now_ms: int) -> bytes:
    day = datetime.fromtimestamp(now_ms / 1000, tz=UTC).strftime("%Y-%m-%d")
    return hmac.new(secret, day.encode(), hashlib.sha256).digest()[:16]


def visitor_key(salt: bytes, ip: str, user_agent: str, service: str) -> int:
    """An unsigned 64-bit key for this visitor on this service today."""
    h = hashlib.blake2b(digest_size=8, key=salt)
    for part in (ip, user_agent, service):
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(4, "big"))  # length-prefixed: no two triples hash the same input
        h.update(data)
    return int.from_bytes(h.digest(), "big")


def client_ip(peer: str, forwarded_for: str | None, trusted_proxies: frozenset[str]) -> str:
    """The visitor's address: the TCP peer, unless the peer is a trusted proxy, in which case
    the right-most address in ``X-Forwarded-For`` that is not itself a trusted proxy (a client
    can put anything on the left of that header; only what our proxies appended is believed)."""
    if not forwarded_for or peer not in trusted_proxies:
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted_proxies:
            return hop
    return hops[0] if hops else peer


class SaltCache:
    """Remembers today's salt so the hot path hashes once per day, not once per event."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._day = -1
        self._salt = b""

    def salt(self, now_ms: int) -> bytes:
        day = now_ms // 86_400_000
        if day != self._day:
            self._salt = daily_salt(self._secret, now_ms)
            self._day = day
        return self._salt
