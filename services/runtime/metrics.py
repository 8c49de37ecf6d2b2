"""What a service counts for Prometheus (GET /metrics).

FastStream's middleware counts records received and published per topic; these say what
became of each message, by type, and how long handling took. Each app has a registry of
its own, so the tests can run several services in one process."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pymongo import monitoring

# The outcome of one record: exactly one of these.
HANDLED = "handled"  # including a command refused by a rule (see offers_rejections)
INVALID = "invalid"  # a command that breaks the contract's field rules: refused
DEAD_LETTERED = "dead_lettered"
SKIPPED = "skipped"  # an event we could not read or handle (events have no dead letter)
PARKED = "parked"  # waiting for its aggregate (services.runtime.parking); one of these follows:
RELEASED = "released"  # its aggregate arrived and it was handled
REFUSED_AFTER_WAIT = "refused_after_wait"  # its wait ran out: one CommandRejected

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "offers_messages",
            "Records taken off a topic, by message type and what became of them.",
            ("service", "topic", "type", "outcome"),
            registry=self.registry,
        )
        self.rejections = Counter(
            "offers_rejections",
            "Commands refused (one CommandRejected each), by command type and code.",
            ("service", "command_type", "code"),
            registry=self.registry,
        )
        self.handling_seconds = Histogram(
            "offers_handling_seconds",
            "Time from taking a record off the topic to its effects being stored and "
            "published, by message type.",
            ("service", "topic", "type"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.outbox_backlog = Gauge(
            "offers_outbox_backlog",
            "Documents whose events the per-record path stored and has not published yet, by "
            "collection (a batch's outboxes are marked by its records' offsets: consumer lag).",
            ("service", "collection"),
            registry=self.registry,
        )
        self.parked = Gauge(
            "offers_parked",
            "Records waiting for their aggregate (services.runtime.parking).",
            ("service",),
            registry=self.registry,
        )
        self.parked_oldest_seconds = Gauge(
            "offers_parked_oldest_seconds",
            "Age of the oldest parked record.",
            ("service",),
            registry=self.registry,
        )
        self.stream_clients = Gauge(
            "offers_stream_clients",
            "Pushed-stream clients connected to this instance (services.runtime.streams).",
            ("service",),
            registry=self.registry,
        )
        self.streams_cut_off = Counter(
            "offers_streams_cut_off",
            "Stream clients cut off (fell behind, or the live feed restarted).",
            ("service",),
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "offers_consumer_lag",
            "Records on a partition this instance owns that it has not handled yet.",
            ("service", "topic", "partition"),
            registry=self.registry,
        )
        self.database_commands = Counter(
            "offers_database_commands",
            "Commands sent to the database, by command and collection: its round trips, "
            "which on FerretDB cost about as much as the documents they carry.",
            ("service", "command", "collection"),
            registry=self.registry,
        )
        self.batch_records = Histogram(
            "offers_batch_records",
            "Records per fetched batch this instance handled (services.runtime.batch).",
            ("service",),
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "offers_batch_seconds",
            "Time a fetched batch spent in each step: deciding (its records' rules, with the "
            "reads they needed), checking (the documents written first: new, or as a sweep "
            "saw them), storing (its other writes), publishing (its messages, acknowledged) "
            "and finishing (emptying outboxes, deleting).",
            ("service", "step"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.messages_published = Counter(
            "offers_published",
            "Messages a batch published (acknowledged by the broker), by topic.",
            ("service", "topic"),
            registry=self.registry,
        )
        self.service = service

    def published(self, by_topic: Mapping[str, int]) -> None:
        for topic, count in by_topic.items():
            self.messages_published.labels(self.service, topic).inc(count)

    def database_listener(self) -> monitoring.CommandListener:
        return _CountCommands(self)

    def batch(self, records: int, steps: dict[str, float]) -> None:
        """One fetched batch handled: its size, and the seconds of each of its steps."""
        self.batch_records.labels(self.service).observe(records)
        for step, seconds in steps.items():
            self.batch_seconds.labels(self.service, step).observe(seconds)

    def rejected(self, command_type: str, code: str) -> None:
        self.rejections.labels(self.service, command_type, code).inc()

    def count(self, topic: str, type_: str, outcome: str, seconds: float) -> None:
        self.messages.labels(self.service, topic, type_, outcome).inc()
        if outcome != DEAD_LETTERED:
            self.handling_seconds.labels(self.service, topic, type_).observe(seconds)

    async def record_consumer_lag(self, broker: KafkaBroker) -> None:
        """Lag of every partition this instance consumes: the newest offset the broker
        reported minus the offset committed, which we commit only after handling."""
        self.consumer_lag.clear()  # partitions handed to another instance drop out
        consumers: list[Any] = []
        for subscriber in broker.subscribers:
            consumers.append(getattr(subscriber, "consumer", None))
        for consumer in filter(None, consumers):
            for partition in consumer.assignment():
                newest = consumer.highwater(partition)
                if newest is None:
                    continue  # nothing fetched yet
                with suppress(KafkaError, TimeoutError):
                    committed = await asyncio.wait_for(consumer.committed(partition), timeout=2)
                    self.consumer_lag.labels(
                        self.service, partition.topic, str(partition.partition)
                    ).set(max(0, newest - (committed or 0)))


class _CountCommands(monitoring.CommandListener):
    """PyMongo calls this for every command the client sends."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        collection = event.command.get(event.command_name)
        self.metrics.database_commands.labels(
            self.metrics.service,
            event.command_name,
            collection if isinstance(collection, str) else "",
        ).inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
