"""What the faults drive and watch the system with: a producer of commands (batched, or
one at a time with retries across a broker outage) and a recorder of every output topic
from the moment it started."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from contracts import topics
from services.runtime.kafka import ensure_topics
from services.runtime.kafka_access import client_options

log = logging.getLogger("faults")

OUTPUT_TOPICS = topics.OUTPUTS
COMMAND_TOPICS = topics.COMMANDS
LARGE = 4 * 1024 * 1024  # room for the over-1-MiB records of the malformed fault


@dataclass(frozen=True, slots=True)
class Step:
    """One record to publish."""

    topic: str
    key: str | None  # None: published without a key (a common producer mistake)
    value: dict[str, Any] | bytes | None

    @property
    def encoded_key(self) -> bytes | None:
        return None if self.key is None else self.key.encode()

    def encoded(self) -> bytes | None:
        if self.value is None or isinstance(self.value, bytes):
            return self.value
        return json.dumps(self.value).encode()


@dataclass(frozen=True, slots=True)
class Position:
    topic: str
    partition: int
    offset: int


class Sender:
    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._producer = self._new_producer(idempotent=True)
        self._reliable: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()  # one replacement producer at a time
        self.retries = 0
        self.sent = 0  # records sent one at a time by send_reliably

    def _new_producer(self, *, idempotent: bool) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **client_options(self._bootstrap),
            linger_ms=5,
            max_request_size=LARGE,
            request_timeout_ms=10_000,
            # Acknowledged only once in sync replicas have it: with acks=1 (aiokafka's default
            # without idempotence) a command acknowledged by a leader that is then lost is gone.
            acks="all",
            # In order per partition even when a batch is retried. (Not for send_reliably:
            # after a broker restart an idempotent aiokafka producer can fail for good with
            # OutOfOrderSequenceNumber; it awaits each record before the next instead.)
            enable_idempotence=idempotent,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()
        if self._reliable is not None:
            with contextlib.suppress(Exception):
                await self._reliable.stop()

    async def send_all(self, steps: Sequence[Step]) -> list[Position]:
        """Publishes in this order (per partition), batched; where each record landed."""
        futures = [
            await self._producer.send(step.topic, step.encoded(), key=step.encoded_key)
            for step in steps
        ]
        written = await asyncio.gather(*futures)
        return [Position(m.topic, m.partition, m.offset) for m in written]

    async def send_reliably(self, step: Step, give_up_after: float = 180) -> Position:
        """Publishes one record and waits for the broker to have it, retrying through a
        broker outage like a careful producer (a retry may write it twice: commands are
        idempotent by command_id). A producer that fails is replaced."""
        deadline = time.monotonic() + give_up_after
        while True:
            producer: AIOKafkaProducer | None = None
            try:
                async with self._lock:
                    if self._reliable is None:
                        fresh = self._new_producer(idempotent=False)
                        await asyncio.wait_for(fresh.start(), 15)
                        self._reliable = fresh
                    producer = self._reliable
                future = await asyncio.wait_for(
                    producer.send(step.topic, step.encoded(), key=step.encoded_key), 15
                )
                written = await asyncio.wait_for(future, 15)
                self.sent += 1
                return Position(written.topic, written.partition, written.offset)
            except Exception as error:  # any failure of the broker or the client: retry
                self.retries += 1
                if time.monotonic() > deadline:
                    raise
                log.debug("send failed (%r); retrying with a new producer", error)
                async with self._lock:
                    if self._reliable is producer and producer is not None:
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(producer.stop(), 5)
                        self._reliable = None
                await asyncio.sleep(0.5)


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    value: Any  # the parsed JSON, or None when it is not JSON
    raw: bytes
    timestamp: float = 0.0  # when its producer wrote it (seconds since the epoch)


class Recorder:
    """Every record on the output topics from start() on, read on demand (catch_up), so a
    broker restart in between costs nothing but a reconnection."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._consumer = AIOKafkaConsumer(
            **client_options(bootstrap),
            fetch_max_wait_ms=50,
            max_partition_fetch_bytes=LARGE,
            enable_auto_commit=False,
        )
        self._partitions: list[TopicPartition] = []
        self.records: list[Record] = []

    async def start(self) -> None:
        counts = await ensure_topics(self._bootstrap, OUTPUT_TOPICS)
        self._partitions = [TopicPartition(t, n) for t in OUTPUT_TOPICS for n in range(counts[t])]
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_end(*self._partitions)
        for partition in self._partitions:
            await self._consumer.position(partition)  # resolve "end" now, not lazily

    async def stop(self) -> None:
        await self._consumer.stop()

    async def catch_up(self, within: float = 60) -> None:
        """Reads everything published up to now."""
        ends = await self._consumer.end_offsets(self._partitions)
        deadline = time.monotonic() + within
        while True:
            behind = [tp for tp in self._partitions if await self._consumer.position(tp) < ends[tp]]
            if not behind:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"recorder still behind on {behind} after {within}s")
            batches = await self._consumer.getmany(*behind, timeout_ms=500)
            for found in batches.values():
                for message in found:
                    raw = message.value or b""
                    try:
                        value = json.loads(raw)
                    except (ValueError, RecursionError):  # hostile bytes, kept as they are
                        value = None
                    self.records.append(
                        Record(
                            message.topic,
                            message.partition,
                            message.offset,
                            message.key.decode(errors="replace") if message.key else None,
                            {k: v.decode(errors="replace") for k, v in message.headers},
                            value,
                            raw,
                            message.timestamp / 1000,
                        )
                    )


async def message_ids(bootstrap: str, topic: str, within: float = 30) -> set[str]:
    """The ids (`event_id` header) of every message on a topic from its start: what a
    service published to a topic the Recorder does not follow (its internal topic)."""
    counts = await ensure_topics(bootstrap, (topic,))
    partitions = [TopicPartition(topic, n) for n in range(counts[topic])]
    consumer = AIOKafkaConsumer(**client_options(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        ids: set[str] = set()
        deadline = time.monotonic() + within
        while behind := [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"still behind on {behind} after {within}s")
            batches = await consumer.getmany(*behind, timeout_ms=500)
            for found in batches.values():
                for message in found:
                    headers = {k: v.decode(errors="replace") for k, v in message.headers}
                    if "event_id" in headers:
                        ids.add(headers["event_id"])
        return ids
    finally:
        await consumer.stop()


async def allow_large_records(bootstrap: str) -> None:
    """Kafka refuses records over ~1 MB by default; SPEC §4's "over 1 MiB" case needs the
    command topics (and the dead-letter topic: bytes unchanged) to take them."""
    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await admin.start()
    try:
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, name, configs={"max.message.bytes": str(LARGE)}
                )
                for name in (*COMMAND_TOPICS, topics.COMMANDS_DEAD_LETTER)
            ]
        )
    finally:
        await admin.close()
