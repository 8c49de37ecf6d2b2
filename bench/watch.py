"""A topic watcher: reads a topic from its current end and notes when each of the bench's
records arrives (keyed by record key, and `kind` for notifications or `type` for events)."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import suppress

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.runtime.kafka import ensure_topics
from services.runtime.kafka_access import client_options

from .common import INFRA, say


class Watcher:
    def __init__(self, topic: str, key_prefix: str, kind_field: str = "kind") -> None:
        self.topic = topic
        self.prefix = key_prefix.encode()
        # What tells records apart: a notification's `kind`, an event's `type`.
        self.kind_field = kind_field
        # Small fetch wait: the watcher's own delay is part of every latency it measures.
        self._consumer = AIOKafkaConsumer(
            **client_options(INFRA.kafka), fetch_max_wait_ms=5, max_partition_fetch_bytes=4 << 20
        )
        self.arrived: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        counts = await ensure_topics(INFRA.kafka, [self.topic])
        partitions = [TopicPartition(self.topic, n) for n in range(counts[self.topic])]
        await self._consumer.start()
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for partition in partitions:
            await self._consumer.position(partition)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    key = record.key or b""
                    if not key.startswith(self.prefix):
                        continue
                    kind = ""
                    with suppress(ValueError, AttributeError):
                        kind = str(json.loads(record.value or b"{}").get(self.kind_field, ""))
                    self.arrived.setdefault((key.decode(), kind), now)
            if batches:
                self._changed.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            return len(self.arrived)
        return sum(1 for _, k in self.arrived if k == kind)

    async def wait_for(
        self, count: int, *, kind: str | None, within: float, label: str, since: float
    ) -> float:
        """Waits until `count` records (of `kind`) arrived; returns the last arrival time.
        Prints a progress line every 5 s."""
        deadline = time.perf_counter() + within
        next_line = time.perf_counter() + 5
        while (seen := self.count(kind)) < count:
            now = time.perf_counter()
            if now >= deadline:
                raise TimeoutError(f"{label}: only {seen}/{count} arrived within {within:.0f}s")
            if now >= next_line:
                say(f"{label}: {seen}/{count} ({seen / (now - since):.0f}/s so far)")
                next_line = now + 5
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=0.5)
        times = [t for (_, k), t in self.arrived.items() if kind is None or k == kind]
        return max(times)
