"""The one place settings become librdkafka configuration."""

from __future__ import annotations

from typing import Any

from pipeline.settings import Settings
from pipeline.topics import MAX_RECORDS_MESSAGE_BYTES


def producer_config(settings: Settings) -> dict[str, Any]:
    k = settings.kafka
    return {
        "bootstrap.servers": settings.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": k.linger_ms,
        "message.timeout.ms": k.delivery_timeout_ms,
        "socket.connection.setup.timeout.ms": min(k.delivery_timeout_ms, 3000),
        "reconnect.backoff.max.ms": 1000,
        # keys land where aiokafka/Faust/Java would put them (Tansu reference, rule 2)
        "partitioner": "murmur2_random",
        "client.id": "perfplat-ingest",
        # a data-set write request is one message of up to 10 MiB of JSON (before lz4)
        "message.max.bytes": MAX_RECORDS_MESSAGE_BYTES + 65536,
    }


def admin_config(settings: Settings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.bootstrap, "socket.connection.setup.timeout.ms": 3000}


def consumer_config(settings: Settings, group: str) -> dict[str, Any]:
    k = settings.kafka
    return {
        "bootstrap.servers": settings.bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": k.session_timeout_ms,
        "heartbeat.interval.ms": k.heartbeat_interval_ms,
        "fetch.wait.max.ms": 50,
        "fetch.queue.backoff.ms": 0,
    }
