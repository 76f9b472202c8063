"""Dead-letter records: what could not be processed, where it came from, and why."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    reason: str
    value: bytes

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "topic": self.topic,
                "partition": self.partition,
                "offset": self.offset,
                "reason": self.reason,
                "value_b64": base64.b64encode(self.value[:65536]).decode(),
                "value_truncated": len(self.value) > 65536,
            }
        )
