"""The transactional outbox, on one MongoDB document at a time.

FerretDB (and a MongoDB without a replica set) has no multi-document transactions, so a
state change and the events it causes are written in ONE update of ONE document: the
document carries an `outbox` array and an `outbox_since` timestamp while anything in it
is unpublished. After the write the handler publishes the outbox and clears it; if the
process dies in between, the relay finds the document by `outbox_pending` and publishes it
again. Events keep their `event_id`, so a repeat on the wire is harmless to consumers.

Every outbox-bearing document has `revision` (bumped by every write), `outbox` and, while
the outbox is not empty, `outbox_since` and `outbox_pending: true`. The flag is there for
the relay's query: an equality, which every backend serves from an index (FerretDB 1.x
never pushes a range such as `outbox_since <= t` or an `$exists` down), on a set that stays
small, as the flag is removed once the events are out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pymongo.asynchronous.collection import AsyncCollection

from .background import every
from .clock import utc_now
from .config import Settings
from .ownership import Ownership

log = logging.getLogger(__name__)

PENDING = "outbox_pending"
PAGE_SIZE = 500  # documents per round trip while the relay reads the pending ones


class EventLike(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def event_id(self) -> str: ...
    def model_dump_json(self) -> str: ...


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One event exactly as it will go on the wire."""

    topic: str
    key: str
    type: str
    event_id: str
    payload: str

    @classmethod
    def of(cls, event: EventLike, *, topic: str, key: str) -> OutboxEntry:
        return cls(topic, key, event.type, event.event_id, event.model_dump_json())

    def to_document(self) -> dict[str, str]:
        return {
            "topic": self.topic,
            "key": self.key,
            "type": self.type,
            "event_id": self.event_id,
            "payload": self.payload,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> OutboxEntry:
        return cls(
            document["topic"],
            document["key"],
            document["type"],
            document["event_id"],
            document["payload"],
        )


def outbox_fields(entries: Sequence[OutboxEntry], now: datetime) -> dict[str, Any]:
    """The `$set` fields that put entries in a document's outbox."""
    return {
        "outbox": [entry.to_document() for entry in entries],
        "outbox_since": now,
        PENDING: True,
    }


class Publish(Protocol):
    async def __call__(self, entries: Sequence[OutboxEntry]) -> None: ...


class MongoOutbox:
    """Finds and clears the outboxes of one collection.

    With an `ownership`, the relay touches only the documents this instance writes (see
    services.runtime.ownership); without one, the collection's documents are written once
    and cleared once, so two clearing instances can only write the same thing.
    """

    def __init__(
        self, collection: AsyncCollection[dict[str, Any]], ownership: Ownership | None = None
    ) -> None:
        self.collection = collection
        self.ownership = ownership

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(PENDING)

    async def unpublished(self) -> int:
        """How many documents have events stored but not yet published."""
        return await self.collection.count_documents({PENDING: True})

    async def mark_published(self, document_id: str, revision: int) -> None:
        # Conditioned on the revision: a write that came in meanwhile keeps its own outbox.
        await self.collection.update_one(
            {"_id": document_id, "revision": revision},
            {"$set": {"outbox": []}, "$unset": {"outbox_since": "", PENDING: ""}},
        )

    async def flush(self, document: Mapping[str, Any], publish: Publish) -> None:
        entries = [OutboxEntry.from_document(entry) for entry in document.get("outbox", [])]
        if entries:
            await publish(entries)
            await self.mark_published(document["_id"], document["revision"])

    async def relay_stale(self, publish: Publish, older_than: datetime) -> int:
        """Publishes outboxes left behind (a crash, a failed publish). Returns how many."""
        pending = self.collection.find(
            {PENDING: True}, {"_id": 1, "outbox_since": 1}, batch_size=PAGE_SIZE
        )
        count = 0
        async for found in pending:
            document_id = found["_id"]
            if found["outbox_since"] > older_than:
                continue  # young: its writer is publishing it right now
            if self.ownership is None:
                guard: AbstractAsyncContextManager[None] = nullcontext()
            elif self.ownership.owns(document_id):
                guard = self.ownership.writing(document_id)
            else:
                continue  # its owner relays it
            async with guard:
                # Read again under the guard: the owner may have published it meanwhile.
                document = await self.collection.find_one({"_id": document_id, PENDING: True})
                if document is not None and document["outbox_since"] <= older_than:
                    await self.flush(document, publish)
                    count += 1
        return count


async def relay_stale(
    outboxes: Sequence[MongoOutbox], publish: Publish, older_than: datetime
) -> int:
    """Republishes every outbox left unpublished since before `older_than`."""
    total = 0
    for outbox in outboxes:
        count = await outbox.relay_stale(publish, older_than)
        if count:
            log.warning(
                "republished %d outbox(es) of %s left unpublished (a crash or a broker "
                "outage); consumers dedupe them by event_id",
                count,
                outbox.collection.name,
            )
        total += count
    return total


def relay_forever(
    outboxes: Sequence[MongoOutbox], publish: Publish, settings: Settings
) -> Callable[[], Coroutine[Any, Any, None]]:
    """The background task that republishes what a crash left in outboxes."""
    grace = timedelta(seconds=settings.outbox_relay_after_seconds)

    async def relay() -> None:
        await every(
            settings.outbox_relay_after_seconds,
            lambda: relay_stale(outboxes, publish, utc_now() - grace),
            "outbox relay",
        )

    return relay
