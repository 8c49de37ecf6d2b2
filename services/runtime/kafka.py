"""The Kafka side of a service: one broker, declared publishers (so AsyncAPI shows every
topic a service writes), and subscribers that commit an offset only after handling."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from itertools import chain
from typing import Any

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.publisher import DefaultPublisher
from faststream.kafka.subscriber.usecase import BatchSubscriber

from contracts import topics

from .background import every
from .config import Settings, bootstrap_list, topic_layout_from_env
from .kafka_access import KafkaSecurity, security_from_env
from .metrics import ServiceMetrics
from .outbox import OutboxEntry
from .topics import DEAD_LETTER_MAX_BYTES, TopicLayout, warn_if_smaller
from .wire import RecordOrigin, raw_body

TOPIC_READY_SECONDS = 30

log = logging.getLogger(__name__)


async def fetch_batch(
    self: BatchSubscriber, consumer: AIOKafkaConsumer
) -> tuple[ConsumerRecord[bytes, bytes], ...]:
    """FastStream's `BatchSubscriber.get_msg` without its sleep after an empty fetch.

    `getmany` already waits up to `batch_timeout_ms` and answers as soon as a record is
    there; FastStream then sleeps as long again when it found none, and a record arriving
    during that sleep waits for it. On a quiet service that was half of all records, each
    held up to 10 ms on every hop (measured: p50 command -> notification 39 -> 29 ms at 20
    offers/s without it). Without the sleep, an idle consumer still wakes only once per
    `batch_timeout_ms`."""
    fetched = await consumer.getmany(timeout_ms=self.batch_timeout_ms, max_records=self.max_records)
    return tuple(chain.from_iterable(fetched.values()))


setattr(BatchSubscriber, "get_msg", fetch_batch)  # noqa: B010 (mypy: no assigning a method)


def new_broker(settings: Settings, logger: logging.Logger, metrics: ServiceMetrics) -> KafkaBroker:
    # Idempotent producer: a retried send never writes an event twice within a session, and
    # (with aiokafka's one request in flight per partition) events of one key stay in order.
    # FastStream's per-message "Received"/"Processed" lines go to DEBUG; ours say more.
    # Its Prometheus middleware counts records received and published, per topic.
    return KafkaBroker(
        bootstrap_list(settings.kafka_bootstrap_servers),
        security=settings.kafka_security.faststream_security(),
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


class TopicLayoutError(RuntimeError):
    """The topics a service consumes do not have the same number of partitions."""


def check_copartitioned(counts: dict[str, int], consumed: Sequence[str]) -> None:
    """Each aggregate's records must meet in one partition number on every topic."""
    found = {name: counts[name] for name in consumed}
    if len(set(found.values())) > 1:
        listed = ", ".join(f"{name} has {n}" for name, n in found.items())
        raise TopicLayoutError(
            f"the topics this service consumes must have the same number of partitions, so "
            f"that each offer's records meet in one partition ({listed}); add partitions "
            "to the smaller ones with kafka-topics.sh --alter before starting it"
        )


async def ensure_topics(
    bootstrap_servers: str,
    names: Sequence[str],
    layout: TopicLayout | None = None,
    security: KafkaSecurity | None = None,
) -> dict[str, int]:
    """Creates the topics a service uses that do not exist yet, as `layout` says (from the
    environment by default: services.runtime.topics), instead of leaving it to broker
    auto-creation (one partition, and errors in the log meanwhile); says in one line each
    which existing ones are smaller than configured. Returns each topic's partitions."""
    layout = layout or topic_layout_from_env()
    security = security or security_from_env()
    admin = AIOKafkaAdminClient(**security.client_options(bootstrap_servers))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            # A topic another service created meanwhile comes back as an error code: fine.
            await admin.create_topics(
                [
                    NewTopic(
                        name,
                        layout.partitions,
                        layout.replication_factor,
                        topic_configs=layout.configs(name),
                    )
                    for name in missing
                ]
            )
        # A topic just created (here, or by a service starting beside this one) can be
        # described with no partitions for a moment, until the metadata has spread.
        deadline = asyncio.get_running_loop().time() + TOPIC_READY_SECONDS
        while True:
            described = await admin.describe_topics(list(names))
            counts = {topic["topic"]: len(topic["partitions"]) for topic in described}
            pending = [name for name in names if not counts.get(name)]
            if not pending or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        warn_if_smaller(
            layout,
            {
                topic["topic"]: (
                    len(topic["partitions"]),
                    min((len(p["replicas"]) for p in topic["partitions"]), default=0),
                )
                for topic in described
                if topic["topic"] in existing
            },
        )
        return counts
    finally:
        await admin.close()


def subscribe_all(
    broker: KafkaBroker,
    topic_names: Sequence[str],
    settings: Settings,
    listener: ConsumerRebalanceListener,
) -> list[BatchSubscriber]:
    """The service's consumers, each subscribed to all its topics, in the service's group.

    Range assignment gives each consumer the same partition numbers of every topic, so all
    records of one key (one aggregate) meet in one consumer, which handles them in order,
    a fetched batch at a time (services.runtime.service). Several consumers per instance
    (KAFKA_CONSUMERS) handle different partitions concurrently.

    Static membership (KIP-345): each consumer has a `group.instance.id` that outlives the
    process, so one restarted after a crash takes its partitions back at once, without a
    rebalance or waiting out the dead member's session. Offsets are committed by `Commits`
    (MANUAL: the service notes a batch's offsets once it is stored and published, and on an
    exception rewinds each partition to the batch's first record of it)."""
    return [
        broker.subscriber(
            *topic_names,
            group_id=settings.kafka_group_id,
            group_instance_id=None
            if settings.kafka_instance_id is None
            else f"{settings.kafka_instance_id}-{index}",
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=settings.kafka_session_timeout_ms,
            ack_policy=AckPolicy.MANUAL,
            # A fetched batch at a time: what the broker has for us now, up to
            # max_records; never waiting to fill one (services.runtime.batch).
            batch=True,
            max_records=settings.kafka_batch_max_records,
            batch_timeout_ms=settings.kafka_batch_wait_ms,
            auto_offset_reset="earliest",
            decoder=raw_body,
            # Latency: do not sit 500 ms on an empty fetch (aiokafka's default); see config.py.
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            title="consume",
            description=f"{settings.service_name} reads these topics",
            listener=listener,
            include_in_schema=index == 0,
        )
        for index in range(settings.kafka_consumers)
    ]


def on_each_batch(
    broker: KafkaBroker,
    subscriber: BatchSubscriber,
    handle: Callable[[KafkaMessage], Awaitable[None]],
) -> None:
    """Calls `handle` with each batch the subscriber fetches. The batch's message is taken
    from FastStream's context rather than asked for as a `KafkaMessage` parameter: FastStream
    resolves such a parameter as a sync dependency, in a worker thread, for every batch
    (0.3 ms of CPU and two thread switches each, measured through its test broker)."""

    @subscriber
    async def on_batch(_: object) -> None:
        await handle(broker.context.get_local("message"))


class Commits(ConsumerRebalanceListener):  # type: ignore[misc]
    """The offsets of the batches a service has handled, committed every `interval` seconds
    (Kafka Streams' commit.interval.ms) instead of after each batch.

    A commit after each batch was a round trip the next batch waited for (6 ms on Kafka
    4.1, whose group coordinator lingers 5 ms before it writes) and 1.6 ms of the broker's
    CPU, for every batch of every consumer. Now a batch only notes its offsets (`handled`,
    once it is stored and published), and they are committed on the next tick; before a
    partition is given away, once no record is being handled (`inner`, the listener that
    waits for that), and when the service stops. So only a crash leaves handled records
    uncommitted: at most `interval` of them are delivered again, and each is a repeat that
    its handler recognises (a command's id is remembered, a message's id derived), its
    outboxes published again with their ids."""

    def __init__(self, interval_seconds: float, inner: ConsumerRebalanceListener) -> None:
        self.interval = interval_seconds
        self.inner = inner
        self._handled: dict[Any, dict[TopicPartition, int]] = {}  # by aiokafka consumer
        # One commit at a time: an older one landing after a newer would move a partition back.
        self._committing = asyncio.Lock()

    def handled(self, consumer: Any, records: Iterable[ConsumerRecord[bytes, bytes]]) -> None:
        offsets = self._handled.setdefault(consumer, {})
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)

    async def commit(self, only: Collection[TopicPartition] | None = None) -> None:
        """Commits the noted offsets (of `only`, if given: partitions being given away,
        whose offsets are then forgotten whether or not the commit succeeds). One that fails
        stays noted for the next tick, while its partition is still this consumer's."""
        async with self._committing:
            # (A copy: a consumer's first batch may add it while a commit is awaited.)
            for consumer, offsets in list(self._handled.items()):
                held = consumer.assignment()
                for partition in [p for p in offsets if p not in held]:
                    del offsets[partition]  # given away already: not this consumer's to commit
                due = {p: o for p, o in offsets.items() if only is None or p in only}
                if not due:
                    continue
                try:
                    await consumer.commit(due)
                    for partition, offset in due.items():
                        if offsets.get(partition) == offset:  # not handled further meanwhile
                            del offsets[partition]
                except KafkaError as error:
                    then = (
                        "their next owner handles those records again, each a repeat"
                        if only is not None
                        else f"trying again in {self.interval:g}s"
                    )
                    log.warning(
                        "could not commit the offsets of %d handled partition(s) (%s); %s",
                        len(due),
                        error,
                        then,
                    )
                finally:
                    for partition in only or ():
                        offsets.pop(partition, None)

    async def run(self) -> None:
        await every(self.interval, self.commit, "committing handled offsets")

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.inner.on_partitions_revoked(revoked)  # returns once nothing is handled
        await self.commit(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.inner.on_partitions_assigned(assigned)


class Publishers:
    """The topics a service writes, declared up front."""

    def __init__(
        self, broker: KafkaBroker, names: Sequence[str], metrics: ServiceMetrics | None = None
    ) -> None:
        self.topics = tuple(names)
        self._broker = broker
        self._metrics = metrics
        self._by_topic: dict[str, DefaultPublisher] = {
            name: broker.publisher(
                name, title=f"{name}:publish", description=topics.description(name)
            )
            for name in names
        }

    async def publish_together(self, entries: Sequence[OutboxEntry]) -> None:
        """Returns once the broker has acknowledged every entry (only then may their outbox
        count as published). It hands them all to the producer first and then waits for the
        acknowledgements together: a batch costs about one round trip instead of one each.
        Each entry is in the producer's queue before the next is handed over, and the
        idempotent producer keeps a partition's records in that order, so messages of one key
        keep their order. The one way the services publish what they stored: a batch's
        messages, the per-record path's, and the sweeps' requests.

        They go to the broker's own aiokafka producer, not through each topic's FastStream
        publisher (still declared, for AsyncAPI): the publisher's per-message machinery
        (middlewares, a correlation id) cost 50 µs a message against the producer's 20
        (500 messages of 1.5 kB handed over: 25 ms against 10). So they are counted here."""
        by_topic = Counter(entry.topic for entry in entries)
        if undeclared := by_topic.keys() - self._by_topic.keys():
            raise ValueError(f"not a topic this service declares: {', '.join(sorted(undeclared))}")
        producer = _producer_of(self._broker)
        sent: list[Awaitable[object]] = []
        try:
            for entry in entries:
                sent.append(
                    await producer.send(
                        entry.topic,
                        entry.payload.encode(),
                        key=entry.key.encode(),
                        headers=[(name, value.encode()) for name, value in entry.headers().items()],
                    )
                )
        finally:
            # Even when handing one over failed: the ones already handed over are awaited
            # (their errors with them), so none is left unobserved.
            results = await asyncio.gather(*sent, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if self._metrics is not None:
            self._metrics.published(by_topic)

    async def dead_letter(self, raw: bytes, origin: RecordOrigin, error: str) -> None:
        await self._by_topic[topics.COMMANDS_DEAD_LETTER].publish(
            raw, key=origin.key, headers=origin.dead_letter_headers(error)
        )


def _producer_of(broker: KafkaBroker) -> AIOKafkaProducer:
    """The connected broker's aiokafka producer (FastStream 0.7 keeps it there; a started
    broker always has one, and tests/integration/test_publish_together.py sends through
    it, so a FastStream that moved it fails there)."""
    producer: AIOKafkaProducer = broker.config.producer._producer.producer  # type: ignore[attr-defined]
    return producer
