"""perfplat's exception tree.

    PerfplatError
    ├── RetryableError        the dependency may come back: broker or ClickHouse unavailable, timeout
    │   ├── BrokerUnavailable
    │   └── StoreUnavailable
    └── PermanentError        retrying the same input will fail the same way
        ├── BadInput          a request or message that cannot be used (HTTP 4xx, dead-letter)
        └── SchemaMismatch    a Kafka message of an unknown schema version

HTTP status mapping lives in one handler (``api.errors``); the processors map Retryable to
"pause and retry" and Permanent to "dead-letter" in one place (``stream_processors.journey``).
"""

from __future__ import annotations


class PerfplatError(Exception):
    """Root of every error perfplat raises on purpose."""


class RetryableError(PerfplatError):
    """A dependency is unavailable; the same operation may succeed later."""


class BrokerUnavailable(RetryableError):
    pass


class StoreUnavailable(RetryableError):
    pass


class PermanentError(PerfplatError):
    """Retrying the same input fails the same way."""


class BadInput(PermanentError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class SchemaMismatch(PermanentError):
    pass
