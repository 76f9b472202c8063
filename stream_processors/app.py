"""The Faust app: one agent per topic (journey, data-set records, the KPI kinds) and the dead-letter topic.

The agent is thin: take a batch of messages, decode (``journey.decode_batch``), dead-letter
what is malformed, hand the events to the ClickHouse sink (journey events and the counted KPI
kinds: ``kpi_sink.CountedSink``, which stores only events not stored yet). ``take_events``
acknowledges the batch's messages only after the loop body returns, i.e. after the sink's
insert succeeded, so Faust never commits an offset whose events are not in ClickHouse
(at-least-once), and the idempotent sinks and tables turn that into an exactly-once effect.
"""

from __future__ import annotations

import logging
from typing import Any

from pipeline import kpi_rows
from pipeline.settings import Settings
from pipeline.store import Store
from pipeline.topics import topics_for
from schemas import availability, cost, satisfaction, transaction
from stream_processors.dead_letter import DeadLetter
from stream_processors.journey import Message, decode_batch, decode_envelopes, decode_ops
from stream_processors.kafka_transport import WorkerApp
from stream_processors.kpi_sink import CountedSink, KeptSink, journey_sink, probe_sink
from stream_processors.record_sink import RecordSink

log = logging.getLogger(__name__)


def make_app(settings: Settings, store: Store) -> Any:
    k = settings.kafka
    topics = topics_for(k)
    app = WorkerApp(
        settings.worker.app_id,
        fetch_max_wait_ms=k.fetch_max_wait_ms,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",
        # Faust's own files (table state, leader assignment) live beside the rest of the data,
        # not in whatever directory the worker was started from
        datadir=str(settings.data_dir / "worker"),
        broker_session_timeout=k.session_timeout_ms / 1000,
        broker_heartbeat_interval=k.heartbeat_interval_ms / 1000,
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication_factor,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        web_enabled=False,
        broker_commit_interval=1.0,
        topic_allow_declare=False,
        # a data-set write request travels as one message of up to 16 MiB
        consumer_max_fetch_size=32 * 1024 * 1024,
    )
    journey_topic = app.topic(
        topics.journey.name,
        partitions=topics.journey.partitions,
        key_serializer="raw",
        value_serializer="raw",
    )
    dead_topic = app.topic(
        topics.dead_letter.name, partitions=1, key_serializer="raw", value_serializer="raw"
    )
    records_topic = app.topic(
        topics.records.name,
        partitions=topics.records.partitions,
        key_serializer="raw",
        value_serializer="raw",
    )
    backoff = settings.worker.retry_backoff_ms
    sink = journey_sink(store, backoff)
    record_sink = RecordSink(store, settings.worker.retry_backoff_ms)
    max_batch = settings.worker.max_batch_messages
    within = settings.worker.flush_interval_ms / 1000

    async def dead_letter(letters: list[DeadLetter]) -> None:
        for letter in letters:
            log.warning(
                "dead-lettering %s[%d]@%d: %s", letter.topic, letter.partition, letter.offset, letter.reason
            )
            fut = await dead_topic.send(value=letter.encode())
            await fut

    def messages(batch: list[Any]) -> list[Message]:
        return [
            Message(e.message.topic, e.message.partition, e.message.offset, e.message.value) for e in batch
        ]

    async def journey(stream: Any) -> None:
        async for batch in stream.take_events(max_batch, within=within):
            events, dead = decode_batch(messages(batch))
            await dead_letter(dead)
            await sink.write(events)

    async def records(stream: Any) -> None:
        async for batch in stream.take_events(max_batch, within=within):
            ops, dead = decode_ops(messages(batch))
            await dead_letter(dead)
            await record_sink.write(ops)

    app.agent(journey_topic, name="journey")(journey)
    app.agent(records_topic, name="records")(records)

    # The KPI kinds: decode the kind's envelopes, dead-letter what is malformed, hand the
    # events to the kind's sink (counted: transactions, ratings, probes; kept: costs).
    kpi_sinks: dict[str, tuple[Any, Any]] = {
        "transaction": (
            transaction.decode_envelope,
            CountedSink(
                store, backoff, events_table="tx_events", in_table="tx_in", columns=kpi_rows.tx_columns
            ),
        ),
        "satisfaction": (
            satisfaction.decode_envelope,
            CountedSink(
                store,
                backoff,
                events_table="rating_events",
                in_table="rating_in",
                columns=kpi_rows.rating_columns,
            ),
        ),
        "availability": (
            availability.decode_envelope,
            probe_sink(store, backoff),
        ),
        "cost": (
            cost.decode_envelope,
            KeptSink(store, backoff, table="cost_posts", columns=kpi_rows.cost_columns),
        ),
    }
    for kind, (decode, kind_sink) in kpi_sinks.items():
        spec = topics.for_kind(kind)
        topic = app.topic(spec.name, partitions=spec.partitions, key_serializer="raw", value_serializer="raw")

        async def kpi_agent(stream: Any, decode: Any = decode, kind_sink: Any = kind_sink) -> None:
            async for batch in stream.take_events(max_batch, within=within):
                events, dead = decode_envelopes(messages(batch), decode)
                await dead_letter(dead)
                await kind_sink.write(events)

        app.agent(topic, name=kind)(kpi_agent)

    return app
