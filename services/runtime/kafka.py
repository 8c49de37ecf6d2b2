"""The Kafka side of a service: one broker, declared publishers (so AsyncAPI shows every
topic a service writes), and subscribers that commit an offset only after handling."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.publisher import DefaultPublisher
from faststream.kafka.subscriber.usecase import DefaultSubscriber

from contracts import topics

from .config import Settings
from .metrics import ServiceMetrics
from .outbox import OutboxEntry
from .ownership import Ownership
from .wire import RecordOrigin, raw_body

TOPIC_PARTITIONS = 3
# Room for a dead-lettered record larger than Kafka's default 1 MiB (an operator may allow
# larger records on the command topics); one larger still is dead-lettered without its bytes.
DEAD_LETTER_MAX_BYTES = 8 * 1024 * 1024
TOPIC_CONFIGS = {topics.COMMANDS_DEAD_LETTER: {"max.message.bytes": str(DEAD_LETTER_MAX_BYTES)}}


def new_broker(settings: Settings, logger: logging.Logger, metrics: ServiceMetrics) -> KafkaBroker:
    # Idempotent producer: a retried send never writes an event twice within a session, and
    # (with aiokafka's one request in flight per partition) events of one key stay in order.
    # FastStream's per-message "Received"/"Processed" lines go to DEBUG; ours say more.
    # Its Prometheus middleware counts records received and published, per topic.
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=settings.service_name,
        enable_idempotence=True,
        linger_ms=settings.kafka_linger_ms,
        max_request_size=DEAD_LETTER_MAX_BYTES + 64 * 1024,  # the record plus its headers
        logger=logger,
        log_level=logging.DEBUG,
        middlewares=(
            KafkaPrometheusMiddleware(registry=metrics.registry, app_name=settings.service_name),
        ),
    )


async def ensure_topics(bootstrap_servers: str, names: Sequence[str]) -> dict[str, int]:
    """Creates the topics a service uses, with partitions to spread offers over, instead of
    leaving it to broker auto-creation (one partition, and errors in the log meanwhile).
    Returns each topic's partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            # A topic another service created meanwhile comes back as an error code: fine.
            await admin.create_topics(
                [
                    NewTopic(name, TOPIC_PARTITIONS, 1, topic_configs=TOPIC_CONFIGS.get(name, {}))
                    for name in missing
                ]
            )
        described = await admin.describe_topics(list(names))
        return {topic["topic"]: len(topic["partitions"]) for topic in described}
    finally:
        await admin.close()


def subscribe(
    broker: KafkaBroker, topic: str, settings: Settings, ownership: Ownership | None = None
) -> DefaultSubscriber:
    """A subscriber in the service's own consumer group that hands over the raw bytes and
    commits the offset only after the handler returned (NACK_ON_ERROR: on an exception the
    partition is rewound and the record is handled again).

    With several consumers per topic, FastStream runs one consumer per worker, each with its
    own partitions: records of different partitions are handled concurrently, those of one
    partition (so of one aggregate) in order, one at a time."""
    return broker.subscriber(
        topic,
        group_id=settings.kafka_group_id,
        max_workers=settings.kafka_consumers_per_topic,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        decoder=raw_body,
        # Latency: do not sit 500 ms on an empty fetch (aiokafka's default); see config.py.
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        title=f"{topic}:consume",
        description=topics.DESCRIPTIONS[topic],
        listener=ownership,
    )


class Publishers:
    """The topics a service writes, declared up front."""

    def __init__(self, broker: KafkaBroker, names: Sequence[str]) -> None:
        self.topics = tuple(names)
        self._by_topic: dict[str, DefaultPublisher] = {
            name: broker.publisher(
                name, title=f"{name}:publish", description=topics.DESCRIPTIONS[name]
            )
            for name in names
        }

    async def publish(self, entries: Sequence[OutboxEntry]) -> None:
        """Returns once the broker has acknowledged every entry (only then may the outbox be
        cleared), one after another, so that events reach the topic in their order."""
        for entry in entries:
            await self._by_topic[entry.topic].publish(
                entry.payload.encode(),
                key=entry.key.encode(),
                headers={
                    "type": entry.type,
                    "event_id": entry.event_id,
                    "content-type": "application/json",
                },
            )

    async def dead_letter(self, raw: bytes, origin: RecordOrigin, error: str) -> None:
        await self._by_topic[topics.COMMANDS_DEAD_LETTER].publish(
            raw, key=origin.key, headers=origin.dead_letter_headers(error)
        )
