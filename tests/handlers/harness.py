"""The handler tier's stand-ins: a service's real table, handlers, unit of work, parking and
Records, on in-memory documents, fed records by hand.

The broker is a list. Every record goes to one partition (0), as all records of one
aggregate do, and the service's own internal commands are delivered back to it in the
order they were published (`settle`). A record whose handling raises an outage is
delivered again, as the partition is rewound after one; a restart is a new Harness on the
same documents. Time is a clock the test moves.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from contracts import COMMAND_TYPES, EVENT_TYPES
from services.runtime import consumer
from services.runtime.documents import MemoryDocuments
from services.runtime.metrics import ServiceMetrics
from services.runtime.outbox import OutboxEntry
from services.runtime.parking import Parking
from services.runtime.refusals import Refusals
from services.runtime.service import Records, ServiceTable, release_request
from services.runtime.uow import UnitOfWork
from services.runtime.wire import RecordOrigin

GROUP = "handlers"
WAIT = timedelta(seconds=5)


class Clock:
    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Storage:
    """What outlives a restart: the service's documents."""

    rejections: MemoryDocuments = field(default_factory=lambda: MemoryDocuments("rejections"))
    parked: MemoryDocuments = field(default_factory=lambda: MemoryDocuments("parked"))


class Broker:
    """What the service published, in order; `fail_next` makes the next publishes fail as a
    broker outage would."""

    def __init__(self) -> None:
        self.published: list[OutboxEntry] = []
        self.dead_letters: list[tuple[bytes, RecordOrigin, str]] = []
        self.fail_next = 0

    async def publish(self, entries: Sequence[OutboxEntry]) -> None:
        for entry in entries:
            if self.fail_next:
                self.fail_next -= 1
                raise ConnectionError("broker unavailable (the test says so)")
            self.published.append(entry)

    async def dead_letter(self, raw: bytes, origin: RecordOrigin, error: str) -> None:
        self.dead_letters.append((raw, origin, error))


class Partitions:
    """What a consumer would have heard of each (topic, partition): the broker's newest
    offset, and the group's committed offset (what was handled before this instance read)."""

    def __init__(self) -> None:
        self.highwater: dict[tuple[str, int], int] = {}
        self.committed_at: dict[tuple[str, int], int] = {}
        self.committed_asked = 0  # broker round trips a real consumer would make

    def newest(self, topic: str, partition: int) -> int | None:
        return self.highwater.get((topic, partition), 0)  # unless a test says: empty

    async def committed(self, topic: str, partition: int) -> int | None:
        self.committed_asked += 1
        return self.committed_at.get((topic, partition))


class Harness:
    def __init__(
        self,
        table: ServiceTable,
        make_handlers: Callable[[UnitOfWork, Refusals], Any],
        *,
        storage: Storage | None = None,
        clock: Clock | None = None,
        broker: Broker | None = None,
    ) -> None:
        consumer.INFRASTRUCTURE_BACKOFF_SECONDS = 0  # no sleeping through outages here
        self.table = table.for_group(GROUP)
        self.storage = storage or Storage()
        self.clock = clock or Clock()
        self.broker = broker or Broker()
        self.metrics = ServiceMetrics(table.name)
        self.uow = UnitOfWork(self.broker.publish, self.clock, self.table.internal_topic)
        self.refusals = Refusals(self.storage.rejections, self.uow, self.metrics)
        self.parking = Parking(self.storage.parked, self.clock)
        self.handlers = make_handlers(self.uow, self.refusals)
        self.partitions = Partitions()
        self.highwater, self.committed = self.partitions.highwater, self.partitions.committed_at
        self.records = Records(
            self.table,
            self.handlers,
            refusals=self.refusals,
            parking=self.parking,
            dead_letter=self.broker.dead_letter,
            metrics=self.metrics,
            max_contract_days=180,
            unknown_wait=WAIT,
            partitions=self.partitions,
        )
        self._offsets: dict[str, int] = {}
        self._delivered = 0  # of broker.published, how many the service has read back

    async def start(self) -> Harness:
        await self.parking.reload()
        # The service has read everything published before it started (a restart).
        self._delivered = len(self.broker.published)
        return self

    async def send(
        self,
        topic: str,
        message: BaseModel | dict[str, Any] | bytes,
        *,
        key: str | bytes | None = None,
    ) -> RecordOrigin:
        """One record on `topic`, handled as the consumer would, again after an outage.
        Keyed as a producer should key it unless `key` says otherwise (b"" for no key)."""
        raw = _raw(message)
        offset = self._offsets.get(topic, 0)
        self._offsets[topic] = offset + 1
        record_key = _own_key(message) if key is None else key
        encoded = record_key.encode() if isinstance(record_key, str) else record_key or None
        origin = RecordOrigin(topic, 0, offset, encoded)
        await self.deliver(raw, origin)
        return origin

    async def deliver(self, raw: bytes, origin: RecordOrigin, *, attempts: int = 5) -> None:
        """Handles a record; an outage rewinds it, so it is handled again."""
        for _ in range(attempts):
            try:
                await self.records.handle(raw, origin)
                return
            except Exception as error:
                if not consumer.is_outage(error):
                    raise
        raise AssertionError(f"{origin} still failing after {attempts} attempts")

    async def settle(self) -> None:
        """Delivers what the service sent itself, in order, until it sends nothing more."""
        while self._delivered < len(self.broker.published):
            entry = self.broker.published[self._delivered]
            self._delivered += 1
            if entry.topic in self.table.routes:
                await self.send(entry.topic, entry.payload.encode(), key=entry.key)

    async def sweep_parked(self) -> None:
        """What the parked sweep does (services.runtime.app): ask each aggregate with a
        command whose wait ran out to refuse it."""
        for key in self.parking.due():
            request = release_request(key, self.clock())
            await self.send(self.table.internal_topic, request, key=request.key)

    def out(self, type_: str, **fields: Any) -> list[dict[str, Any]]:
        """The payloads of what was published of `type_` (with `fields`), in order."""
        found = []
        for entry in self.broker.published:
            if entry.type != type_:
                continue
            payload = json.loads(entry.payload)
            if all(payload.get(name) == value for name, value in fields.items()):
                found.append(payload)
        return found

    def one(self, type_: str, **fields: Any) -> dict[str, Any]:
        found = self.out(type_, **fields)
        assert len(found) == 1, f"{len(found)} {type_} with {fields}: {found}"
        return found[0]

    def outcome_count(self, outcome: str) -> float:
        total = 0.0
        for metric in self.metrics.messages.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels["outcome"] == outcome:
                    total += sample.value
        return total


def _own_key(message: BaseModel | dict[str, Any] | bytes) -> str:
    """The key a well-behaved producer gives the message: its aggregate's id."""
    if isinstance(message, BaseModel):
        own = getattr(message, "key", None)
        return own if isinstance(own, str) else "k"
    if isinstance(message, dict):
        kind = COMMAND_TYPES.get(message.get("type", "")) or EVENT_TYPES.get(
            message.get("type", "")
        )
        value = message.get(kind.KEY_FIELD) if kind is not None else None
        return value if isinstance(value, str) else "k"
    return "k"


def _raw(message: BaseModel | dict[str, Any] | bytes) -> bytes:
    if isinstance(message, bytes):
        return message
    if isinstance(message, BaseModel):
        return message.model_dump_json(by_alias=True).encode()
    return json.dumps(message).encode()
