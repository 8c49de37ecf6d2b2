"""The I/O loop: Kafka records in, one DuckDB transaction per batch out.

Partitions are assigned, not subscribed, and each is sought to the offset stored in DuckDB
with the rows (the beginning when none is): Kafka's committed offsets are never read back.
They are still committed, after each DuckDB commit, so that the usual lag tools show this
consumer group's progress.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from .fold import TOPICS, Unreadable, read_event
from .warehouse import Landed, connect, stored_offsets, write_batch

log = logging.getLogger("analytics")


@dataclass(frozen=True, slots=True)
class Settings:
    bootstrap_servers: str
    database: str
    group_id: str = "analytics"
    batch: int = 10_000
    topics: Sequence[str] = TOPICS


@dataclass
class Progress:
    """What a person watching a catch-up wants to know, every few seconds."""

    goal: int
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    said: float = 0.0
    told: int = -1

    def tell(self, *, final: bool = False) -> None:
        now = time.monotonic()
        if (not final and now - self.said < 2) or self.told == self.done:
            return
        self.said, self.told = now, self.done
        rate = self.done / max(now - self.started, 1e-9)
        share = f" of {self.goal:,} ({100 * self.done / self.goal:.0f}%)" if self.goal else ""
        print(
            f"[analytics] {self.done:,}{share} records in {now - self.started:.1f}s, {rate:,.0f}/s",
            file=sys.stderr,
            flush=True,
        )


class UnreadableVersions:
    """Says once per (type, schema_version) that events newer than the released schemas
    are kept raw but not folded."""

    def __init__(self) -> None:
        self._said: set[tuple[str, int]] = set()

    def note(self, landed: Landed) -> None:
        event = landed.event
        if event is None or event.readable or (event.type, event.schema_version) in self._said:
            return
        self._said.add((event.type, event.schema_version))
        log.warning(
            "%s schema_version %s is not among the released schemas this consumer knows: kept "
            "in `events`, not folded into the tables (upgrade analytics, then rebuild)",
            event.type,
            event.schema_version,
        )


def land(topic: str, partition: int, offset: int, value: bytes | None) -> Landed:
    try:
        return Landed(topic, partition, offset, read_event(topic, value))
    except Unreadable as error:
        return Landed(topic, partition, offset, None, str(error))


async def _partitions(bootstrap_servers: str, names: Sequence[str]) -> list[TopicPartition]:
    """The partitions of those topics that exist (the services create them)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        for topic in names:
            if topic not in existing:
                log.warning("topic %s does not exist yet: not read this run", topic)
        present = [topic for topic in names if topic in existing]
        described = await admin.describe_topics(present) if present else []
    finally:
        await admin.close()
    return sorted(
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in topic["partitions"]
    )


async def _tell_kafka(consumer: AIOKafkaConsumer, offsets: Mapping[TopicPartition, int]) -> None:
    """Kafka's committed offsets are only for the lag tools to watch: a failure costs
    nothing but a stale figure there, so it does not stop the consumer."""
    try:
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    except KafkaError as error:
        log.info("could not commit offsets to Kafka (only lag tools read them): %s", error)


async def start_at_the_end(settings: Settings) -> None:
    """Makes a new warehouse begin at the topics' current ends instead of their beginning:
    for the tests and the benchmark, which fold only the events they publish afterwards."""
    connection = connect(settings.database)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await consumer.start()
    try:
        partitions = await _partitions(settings.bootstrap_servers, settings.topics)
        ends = await consumer.end_offsets(partitions)
        write_batch(connection, [], {(tp.topic, tp.partition): ends[tp] for tp in partitions})
    finally:
        await consumer.stop()
        connection.close()


async def run(settings: Settings, *, until_caught_up: bool) -> int:
    """Reads and writes until stopped or, with until_caught_up, until every partition's end
    as it was at the start. Returns the number of records read."""
    connection = connect(settings.database)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    # Ctrl-C or SIGTERM ends the loop between batches, never inside DuckDB's write (which
    # would be safe, but a clean stop keeps the batch in hand).
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stopping.set)
    await consumer.start()
    try:
        return await _consume(consumer, connection, settings, until_caught_up, stopping)
    finally:
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signal_number)
        await consumer.stop()
        connection.close()


async def _consume(
    consumer: AIOKafkaConsumer,
    connection: duckdb.DuckDBPyConnection,
    settings: Settings,
    until_caught_up: bool,
    stopping: asyncio.Event,
) -> int:
    partitions = await _partitions(settings.bootstrap_servers, settings.topics)
    consumer.assign(partitions)
    stored = stored_offsets(connection)
    position: dict[TopicPartition, int] = {}
    beginnings = await consumer.beginning_offsets(partitions)
    for tp in partitions:
        position[tp] = max(stored.get((tp.topic, tp.partition), 0), beginnings[tp])
        consumer.seek(tp, position[tp])
    ends: Mapping[TopicPartition, int] = await consumer.end_offsets(partitions)
    goal = sum(max(ends[tp] - position[tp], 0) for tp in partitions)
    print(
        f"[analytics] {goal:,} records to read into {settings.database}, then "
        + ("stopping" if until_caught_up else "following"),
        file=sys.stderr,
        flush=True,
    )
    progress, versions = Progress(goal), UnreadableVersions()
    while not stopping.is_set() and not (
        until_caught_up and all(position[tp] >= ends[tp] for tp in partitions)
    ):
        fetched = await consumer.getmany(timeout_ms=500, max_records=settings.batch)
        batch: list[Landed] = []
        for tp, records in fetched.items():
            for record in records:
                batch.append(land(tp.topic, tp.partition, record.offset, record.value))
                versions.note(batch[-1])
            if records:
                position[tp] = records[-1].offset + 1
        if not batch:
            continue
        offsets = {(tp.topic, tp.partition): position[tp] for tp in fetched if fetched[tp]}
        # DuckDB works in a thread: meanwhile aiokafka goes on fetching the next batch.
        await asyncio.to_thread(write_batch, connection, batch, offsets)
        await _tell_kafka(consumer, {tp: position[tp] for tp in fetched})
        progress.done += len(batch)
        progress.tell()
    progress.tell(final=True)
    return progress.done
