"""``perfplat init``: create the topics and the tables, idempotently. Also run at every start."""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from pipeline.settings import Settings
from pipeline.store import Store
from pipeline.topics import topics_for
from producers.kafka_config import admin_config
from schemas.migrations import migrate

log = logging.getLogger(__name__)


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create every declared topic that does not exist yet; returns the names created."""
    admin = AdminClient(admin_config(settings))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            existing = set(admin.list_topics(timeout=5).topics)
            break
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    wanted = [t for t in topics_for(settings.kafka).all() if t.name not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(t.name, t.partitions, settings.kafka.replication_factor, config=t.config) for t in wanted]
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result(timeout_s)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    log.info("created topics %s", created)
    return created


def ensure_tables(store: Store) -> list[int]:
    applied = migrate(store, store.database)
    if applied:
        log.info("applied schema migrations %s", applied)
    return applied
