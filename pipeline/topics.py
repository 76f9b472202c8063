"""Every Kafka topic perfplat uses, declared once with its partition count and settings."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from pipeline.settings import KafkaSettings

MAX_RECORDS_MESSAGE_BYTES = 16 * 1024 * 1024
"""One write request is one message; the write API takes up to 10 MiB of JSON per request."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Topics:
    journey: TopicSpec
    records: TopicSpec
    dead_letter: TopicSpec
    transactions: TopicSpec
    satisfaction: TopicSpec
    availability: TopicSpec
    costs: TopicSpec

    def all(self) -> list[TopicSpec]:
        return [
            self.journey,
            self.records,
            self.dead_letter,
            self.transactions,
            self.satisfaction,
            self.availability,
            self.costs,
        ]

    def for_kind(self, kind: str) -> TopicSpec:
        """The topic of one KPI event kind (the ``SCHEMA`` name of its ``schemas`` module)."""
        return {
            "transaction": self.transactions,
            "satisfaction": self.satisfaction,
            "availability": self.availability,
            "cost": self.costs,
        }[kind]


def topics_for(kafka: KafkaSettings) -> Topics:
    p = kafka.topic_prefix
    week_ms = str(7 * 86_400_000)
    return Topics(
        journey=TopicSpec(f"{p}.journey.v1", kafka.partitions, {"retention.ms": week_ms}),
        records=TopicSpec(
            f"{p}.records.v1",
            kafka.partitions,
            {"retention.ms": week_ms, "max.message.bytes": str(MAX_RECORDS_MESSAGE_BYTES)},
        ),
        dead_letter=TopicSpec(f"{p}.dead-letter", 1, {"retention.ms": str(30 * 86_400_000)}),
        transactions=TopicSpec(f"{p}.transactions.v1", kafka.partitions, {"retention.ms": week_ms}),
        satisfaction=TopicSpec(f"{p}.satisfaction.v1", kafka.partitions, {"retention.ms": week_ms}),
        availability=TopicSpec(f"{p}.availability.v1", kafka.partitions, {"retention.ms": week_ms}),
        costs=TopicSpec(f"{p}.costs.v1", kafka.partitions, {"retention.ms": week_ms}),
    )


def partition_for_data_set(name: str, partitions: int) -> int:
    """Every write to one data set shares a partition, so its operations apply in order."""
    return zlib.crc32(name.encode()) % partitions


def partition_for_service(service: str, partitions: int) -> int:
    """Every journey and KPI event of one service shares a partition, so one worker counts a
    service and its duplicate check (``stream_processors.kpi_sink.CountedSink``) sees every
    earlier event of that service, whichever visitor or client sent it."""
    return zlib.crc32(service.encode()) % partitions
