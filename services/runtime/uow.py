"""The one write path: read an aggregate, publish what an earlier write left in its outbox,
let the rules decide, write the new state with its messages in one document, publish them,
clear the outbox. Every row leaves it to the runtime (services.runtime.decide), which
loads, asks the row's rule and commits (or refuses):

    stored = await uow.load(offers, command.offer_id)
    outcome = rule(stored.value, command, now)
    await uow.commit(offers, outcome.state, expected=stored, messages=outcome.messages,
                     handled=[command.command_id])

There is no retry loop and no lock: the handler of the aggregate's partition is its only
writer (services.runtime.service), so nothing can write it between the read and the
write. The revision condition stays as a tripwire; if it ever fires, the record is handled
again from a fresh read (WriterConflict is an outage for services.runtime.consumer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from .batch import READS_AT_ONCE, Batched, current
from .documents import Document, Documents
from .outbox import (
    PENDING,
    MessageLike,
    OutboxEntry,
    Publish,
    ensure_outbox_indexes,
    outbox_fields,
    outbox_of,
)

log = logging.getLogger(__name__)

A = TypeVar("A")


class WriterConflict(RuntimeError):
    """The document changed between our read and our write: a second writer exists, which
    the partition layout rules out. Handled again from a fresh read."""


class NotYetKnown(Exception):
    """The command's aggregate does not exist (yet): park the command until it does, or
    refuse it with `rejection` once its wait runs out (services.runtime.parking)."""

    def __init__(self, key: str, code: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.code = code
        self.message = message


# The newest command ids an aggregate remembers. A redelivery repeats only the records read
# since the last committed offset, and a producer's retry comes within seconds: an aggregate
# meets far fewer commands in between, so an older id is never met again, and the document
# stays small however long the aggregate lives.
MAX_HANDLED = 1000


@dataclass(frozen=True, slots=True)
class Stored(Generic[A]):
    """An aggregate as read: its value, the revision a write is conditioned on, the ids of
    the commands it has handled already, and the document (for what the value leaves out)."""

    value: A
    revision: int
    handled: frozenset[str]
    document: Document

    @property
    def handled_in_order(self) -> list[str]:
        return list(self.document.get("handled", ()))


class Repository(Generic[A]):
    """One kind of aggregate in one collection: domain objects in, domain objects out."""

    def __init__(
        self,
        documents: Documents,
        *,
        to_document: Callable[[A], Document],
        from_document: Callable[[Document], A],
        id_of: Callable[[A], str],
    ) -> None:
        self.documents = documents
        self.to_document = to_document
        self.from_document = from_document
        self.id_of = id_of

    async def get(self, aggregate_id: str) -> Stored[A] | None:
        document = await self.documents.get(aggregate_id)
        if document is None:
            return None
        return Stored(
            self.from_document(document),
            document["revision"],
            frozenset(document.get("handled", ())),
            document,
        )

    async def ensure_indexes(self) -> None:
        await ensure_outbox_indexes(self.documents)


class UnitOfWork:
    def __init__(
        self, publish: Publish, clock: Callable[[], datetime], internal_topic: str = ""
    ) -> None:
        self._publish = publish
        self.clock = clock
        self.internal_topic = internal_topic

    def to_self(self, command: MessageLike) -> OutboxEntry:
        """A command the service sends itself: to its internal topic, keyed by the aggregate
        it is for, so that the aggregate's own partition handles it."""
        assert self.internal_topic, "this unit of work was made without an internal topic"
        return OutboxEntry.of(command, topic=self.internal_topic)

    async def load(self, repository: Repository[A], aggregate_id: str) -> Stored[A] | None:
        """The aggregate, after publishing what an earlier write left unpublished: its
        messages go out before any new ones, in the order they were written."""
        stored = await repository.get(aggregate_id)
        if stored is not None:
            await self.flush(repository.documents, stored.document)
        return stored

    def settle_seen(self, documents: Documents, document_id: str) -> None:
        """The row that could take what a sweep saw of the document has decided
        (services.runtime.batch, `Batch.settle_seen`)."""
        batch = current.get()
        if batch is not None and isinstance(documents, Batched):
            batch.settle_seen(documents, document_id)

    async def commit(
        self,
        repository: Repository[A],
        value: A,
        *,
        expected: Stored[A] | None,
        messages: Sequence[MessageLike | OutboxEntry] = (),
        handled: Sequence[str] = (),
        extra: Document | None = None,
    ) -> Stored[A]:
        """Writes the aggregate with its messages in its outbox, publishes, clears."""
        now = self.clock()
        entries = _entries(messages)
        document: Document = {
            **(expected.document if expected is not None else {}),
            **repository.to_document(value),
            **(extra or {}),
            "_id": repository.id_of(value),
            "revision": 1 if expected is None else expected.revision + 1,
            "handled": [*(expected.handled_in_order if expected is not None else ()), *handled][
                -MAX_HANDLED:
            ],
            "updated_at": now,
            **outbox_fields(entries, now),
        }
        for field in ("outbox_since", PENDING):
            if not entries:
                document.pop(field, None)
        if expected is None:
            document.setdefault("created_at", now)
            written = await repository.documents.insert(document)
        else:
            written = await repository.documents.replace(document, revision=expected.revision)
        if not written:
            raise WriterConflict(
                f"{repository.documents.name} {document['_id']} was written by someone else "
                "between our read and our write; handling the record again"
            )
        await self.flush(repository.documents, document)
        return Stored(value, document["revision"], frozenset(document["handled"]), document)

    async def insert_once(
        self,
        documents: Documents,
        document: Document,
        messages: Sequence[MessageLike | OutboxEntry],
    ) -> bool:
        """Stores a write-once document (a message, a notification, a membership) with its
        messages; when it exists already (a redelivery), publishes what it left instead.
        Returns whether it was new as far as is known now (`insert_write_once`): enough for
        a log line, not for a decision."""
        now = self.clock()
        entries = _entries(messages)
        new = {"revision": 1, "created_at": now, **document, **outbox_fields(entries, now)}
        if await documents.insert_write_once(new):
            await self.flush(documents, new)
            return True
        await self.load_once(documents, document["_id"])
        return False

    async def load_once(self, documents: Documents, document_id: str) -> Document | None:
        """A write-once document, if stored, after publishing what it left unpublished."""
        found = await documents.get(document_id)
        if found is not None:
            await self.flush(documents, found)
        return found

    async def set_each(
        self, documents: Documents, ids: Sequence[str], fields: Document, where: Document
    ) -> int:
        """Sets `fields` on each of the documents `ids` that match `where`; how many. One
        `_id` update per document, READS_AT_ONCE side by side (in a batch, each is a read
        through the batch): FerretDB 1.24 holds a PostgreSQL connection per statement of
        one update command, and a bulk of 100 exhausted its pool and stalled (measured)."""
        unique = list(dict.fromkeys(ids))
        changed = 0
        for start in range(0, len(unique), READS_AT_ONCE):
            chunk = unique[start : start + READS_AT_ONCE]
            done = await asyncio.gather(*(documents.update(i, fields, where=where) for i in chunk))
            changed += sum(done)
        return changed

    async def publish(self, entries: Sequence[OutboxEntry]) -> None:
        """Messages stored nowhere (the same input makes them again): sent now, or with the
        open batch's messages, in their order."""
        batch = current.get()
        if batch is not None:
            batch.publish(entries)
        else:
            await self._publish(entries)

    async def flush(self, documents: Documents, document: Document) -> None:
        """Publishes the document's outbox and empties it; in a batch, the batch does that
        once it has stored the document (services.runtime.batch)."""
        batch = current.get()
        if batch is not None and isinstance(documents, Batched):
            batch.take_outbox(documents, document["_id"])
            return
        entries = outbox_of(document)
        if not entries:
            return
        await self._publish(entries)
        # Conditioned on the revision: a tripwire, as in commit.
        await documents.update(
            document["_id"],
            {"outbox": []},
            unset=("outbox_since", PENDING),
            where={"revision": document["revision"]},
        )


def _entries(messages: Sequence[MessageLike | OutboxEntry]) -> list[OutboxEntry]:
    return [m if isinstance(m, OutboxEntry) else OutboxEntry.of(m) for m in messages]
