"""Backpressure for the ClickHouse sinks: a failed step is retried until the store takes it.

A sink's step runs in a thread (the drivers block). Any failure — the server down, a timeout,
a refused insert — is retried with exponential backoff (capped at 10 s) rather than dropped;
meanwhile the agent does not acknowledge the batch, so Faust commits no offset past it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)
MAX_DELAY_S = 10.0


async def until_stored(
    step: Callable[[], None], what: str, backoff_s: float, on_failure: Callable[[], None] | None = None
) -> None:
    """Run ``step`` in a thread until it returns; ``on_failure`` runs after each failed attempt
    (e.g. to drop cached state that may be ahead of the store)."""
    attempt = 0
    while True:
        try:
            await asyncio.to_thread(step)
            return
        except Exception as exc:  # any failure is backpressure: retry, never drop
            if on_failure is not None:
                on_failure()
            attempt += 1
            delay = min(backoff_s * 2 ** min(attempt, 5), MAX_DELAY_S)
            log.warning("%s failed (attempt %d), retrying in %.1fs: %s", what, attempt, delay, exc)
            await asyncio.sleep(delay)
