"""The I/O of a fetched batch of records, done a batch at a time.

Records hands a fetched batch to the handlers inside a `Batch`: while it is open, every
collection a handler writes (a `Batched` collection) reads through the batch and writes into
it, and the unit of work's publishes are held by it. Nothing reaches the database or the
broker until the batch is over; then `Batch.commit` does, in this order:

  0. the documents it has to check first, inserted on their own (their unique `_id` is
     the check, see below): those guessed new, and those read and found absent in a
     collection other partitions also write (`Batched.shared`);
  1. the batch's other new, write-once and changed documents, each with its outbox, in
     bulk writes;
  2. every message of the batch, sent together in the order the handlers made them, and
     awaited together (nothing is published before it is stored);
  3. what the batch deleted (a released parked record), deleted, and the outboxes it
     published that no record of it marks (left by a crash, or written outside a record)
     emptied;

and the batch's offsets are then noted for the next commit (services.runtime.kafka.Commits,
on an interval). The outboxes are not emptied by a second write: each was stored marked
by the record that wrote it (OUTBOX_FROM), and once that record's offset is committed (or
this process has published its batch) a reader takes the outbox as published
(services.runtime.outbox). A crash anywhere in between loses and doubles nothing, as with
one record: the batch is delivered again, each redelivered command finds its aggregate
already changed (its command id remembered), and what an outbox holds under an offset not
committed is published (again, with its ids) when its document is next read.

Reads: a document is read from the database once, then kept in the `StateCache` while its
partition is owned by this process (the cache is dropped on a rebalance, on any failure of a
batch, and bounded in size). That is safe because each document has one writer, the
consumer of its aggregate's partition (services.runtime.service). Within a batch, a read
sees the batch's own writes. Only aggregates are kept: a collection of write-once or
per-command documents (notifications, chat messages, time entries, rejections) is declared
`kept=False`, and what a batch reads or writes of it is forgotten with the batch. Kept, at
320 chat messages a second they pushed the threads, projections and inboxes out of the
cache (every PostMessage read its thread, its offer's projection and an inbox again).

A message that creates its aggregate (an ExtendOffer, the first event of an offer) almost
always finds none, so the aggregate is not read: it is guessed new (`Batch.new_ids`), and
the guess is checked by the database before the batch writes anything else. Every guessed
document the batch writes is inserted first, on its own (its unique `_id` is the check),
and every guessed one it only read is read then. If one was there after all, the batch
undoes its own inserts (nobody else writes them, and nothing is published yet) and raises
`GuessedWrong`: Records handles the batch again, reading first. A redelivered or repeated
creation costs one batch handled twice; nothing is decided on a wrong guess.

A document read and found absent can be there by the time the batch writes only if another
partition wrote it, which only a `shared` collection allows (two offers naming one new
Talent Cloud): such a document is inserted first too, and if it is there the batch raises
BatchWriteConflict with nothing of it stored. One of any other collection has one writer,
this process, so it goes with step 1's writes, saving a round trip (a new recipient's
inbox beside their first notification); were it there after all (a second writer, which
the partition layout rules out), the batch raises BatchWriteConflict as for a replacement
that matched nothing.

FerretDB 1.24 cannot serve a bulk of many updates in one command (it holds a PostgreSQL
connection per statement until the command ends: 50 statements exhaust its pool and the
command never returns), and pushes no `$in` down (a read of many ids is a scan of the
collection). So inserts go as insert_many commands of INSERTED_TOGETHER documents, and reads
and writes of single documents one `_id` command each: reads at most READS_AT_ONCE at a time
per batch; inserts, replacements, updates and deletes at most WRITES_AT_ONCE at a time per
process. Measured: commands of 10
replacements, one at a time per process, wedged FerretDB (not even a ping answered) once
20 processes sent them together, where single-document commands, 16 at a time from each of
20 processes, only waited their turn; and 16 single ones side by side replace 1,450
documents a second where commands of 10 one at a time replaced 900.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final

import bson
from pymongo import DeleteOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from .crash import crash_point
from .documents import Document, MongoDocuments, matches, updated
from .outbox import OUTBOX_BATCH, OUTBOX_FROM, PENDING, OutboxEntry, outbox_of

log = logging.getLogger(__name__)

READS_AT_ONCE: Final = 16
WRITES_AT_ONCE: Final = 16
# New documents per insert command, the commands side by side: 500 offers went in 70 ms as
# one command, 47-53 ms as four or two (FerretDB inserts a command's documents one after
# another, on one PostgreSQL connection).
INSERTED_TOGETHER: Final = 125
# Documents kept between batches: a few MB, and far more than one batch touches.
CACHE_SIZE: Final = 20_000
# Documents a sweep read, kept until the record it asks for takes them: a burst of expiries.
SEEN_SIZE: Final = 20_000
SEEN_BYTES: Final = 64 * 1024 * 1024
# Ids a Listing keeps (a few MB); beyond them it is not kept, and every id is read.
LISTED_AT_MOST: Final = 100_000

_OUTBOX_FIELDS = ("outbox_since", PENDING, OUTBOX_BATCH)
_UNSET = dict.fromkeys(_OUTBOX_FIELDS, "")
DUPLICATE_KEY: Final = 11000


class BatchWriteConflict(RuntimeError):
    """A write of the batch found its document changed by someone else: a second writer,
    which the partition layout rules out. The batch is handled again from fresh reads."""


class GuessedWrong(Exception):
    """A document the batch took to be new (unread) exists: nothing of the batch is stored,
    and it is handled again, reading first."""


PublishAll = Callable[[Sequence[OutboxEntry]], Awaitable[None]]
# Whether the record at (topic, partition, offset) had its batch published: its offset is
# committed, or this process published that batch (services.runtime.service.Records).
Published = Callable[[Sequence[Any]], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Handling:
    """The record being handled (the outermost one: a parked record released meanwhile is
    handled under it, and its offset is committed with it), and how to tell whether an
    outbox a batch left is published."""

    source: tuple[str, int, int]
    published: Published


handling: ContextVar[Handling | None] = ContextVar("handling", default=None)


class Listing:
    """All the ids of a collection whose documents are few (`Batched.listing`): once loaded,
    an id not listed is known absent and is not read. An inbox exists only for a recipient
    who chose email preferences (or whose notifications were counted before they were
    numbered by place), so a notification to anyone else costs no read; a refusal only for
    a command refused, so a command is not looked up among them unless it was.

    It is loaded after every assignment of partitions (`StateCache.relist`, in the
    background: until it is complete every id is read) and forgotten with the cache on every
    revocation; a partition's previous owner has stored its last batch by then. Every write
    of the collection lists its id as it is decided, so one written while the list loads is
    listed too. Beyond LISTED_AT_MOST ids it is not kept, and every id is read as before."""

    def __init__(self, collection: AsyncCollection[Document], at_most: int = LISTED_AT_MOST):
        self.collection = collection
        self.at_most = at_most
        self.ids: set[str] = set()
        self.complete = False
        self.generation = 0

    def absent(self, document_id: str) -> bool:
        return self.complete and document_id not in self.ids

    def add(self, document_id: str) -> None:
        self.ids.add(document_id)

    def forget(self) -> None:
        self.generation += 1
        self.complete = False
        self.ids.clear()

    async def load(self) -> None:
        generation = self.generation
        if await self.collection.estimated_document_count() > self.at_most:
            log.info(
                "%s has more than %d documents: their ids are not listed, and each is read "
                "when it is needed",
                self.collection.name,
                self.at_most,
            )
            return
        async for document in self.collection.find({}, {"_id": 1}):
            if generation != self.generation:
                return  # forgotten meanwhile: the next assignment loads it again
            self.ids.add(document["_id"])
            if len(self.ids) > self.at_most:  # (grown since it was counted)
                self.ids.clear()
                return
        if generation == self.generation:
            self.complete = True
            log.info(
                "%s: %d id(s) listed; any other is known absent and is not read",
                self.collection.name,
                len(self.ids),
            )


class StateCache:
    """Documents as last stored, by collection and `_id` (None: known not to exist), least
    recently used first out.

    Beside them, apart, the documents a sweep of this process has just read (`see`), as the
    BSON it read (compact, and bounded in bytes too: an offer may be large): maybe out of
    date by the time a record needs one, so only a row that asks for them takes one
    (`Decides.seen`), and the batch checks it by its write (see `Batch.get`)."""

    def __init__(
        self, size: int = CACHE_SIZE, seen_size: int = SEEN_SIZE, seen_bytes: int = SEEN_BYTES
    ) -> None:
        self.size = size
        self.seen_size = seen_size
        self.seen_bytes = seen_bytes
        self._documents: OrderedDict[tuple[str, str], Document | None] = OrderedDict()
        self._seen: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._seen_total = 0
        # The collections whose ids are all listed (`Listing`), and their loads running.
        self.listings: list[Listing] = []
        self._loading: set[asyncio.Task[None]] = set()

    def get(self, key: tuple[str, str]) -> tuple[bool, Document | None]:
        if key not in self._documents:
            return False, None
        self._documents.move_to_end(key)
        return True, self._documents[key]

    def put(self, key: tuple[str, str], document: Document | None) -> None:
        self._documents[key] = document
        self._documents.move_to_end(key)
        while len(self._documents) > self.size:
            self._documents.popitem(last=False)

    def clear(self) -> None:
        self._documents.clear()
        self._seen.clear()
        self._seen_total = 0
        for listing in self.listings:
            listing.forget()

    def listing(self, collection: AsyncCollection[Document]) -> Listing:
        """A new listing of `collection`, loaded with the others after every assignment."""
        listing = Listing(collection)
        self.listings.append(listing)
        return listing

    def relist(self) -> None:
        """Loads every listing again, in the background (after an assignment)."""
        for listing in self.listings:
            task = asyncio.create_task(listing.load())
            self._loading.add(task)
            task.add_done_callback(self._loaded)

    def _loaded(self, task: asyncio.Task[None]) -> None:
        self._loading.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "a listing could not be loaded (%s): its ids are read as needed until the "
                "next assignment",
                task.exception(),
            )

    def see(self, name: str, documents: Iterable[tuple[str, bytes]]) -> None:
        """Documents of `name` a sweep read, (`_id`, BSON), each taken once by the record
        it asks for; the oldest go first beyond SEEN_SIZE documents or SEEN_BYTES."""
        for document_id, raw in documents:
            self._seen_total += len(raw) - len(self._seen.pop((name, document_id), b""))
            self._seen[(name, document_id)] = raw
        while self._seen and (
            len(self._seen) > self.seen_size or self._seen_total > self.seen_bytes
        ):
            self._seen_total -= len(self._seen.popitem(last=False)[1])

    def take_seen(self, key: tuple[str, str]) -> bytes | None:
        raw = self._seen.pop(key, None)
        if raw is not None:
            self._seen_total -= len(raw)
        return raw

    def forget(self, keys: Iterable[tuple[str, str]]) -> None:
        for key in keys:
            self._documents.pop(key, None)

    def __len__(self) -> int:
        return len(self._documents)


@dataclass
class _Change:
    """One document the batch changed: as stored before the batch (None: not stored) and as
    it is now (None: deleted)."""

    documents: Batched
    before: Document | None
    now: Document | None
    # Inserted without a read (a write-once document: a notification, a reminder): `before`
    # is not known; the insert finds out, or a read of it in the batch does.
    blind: bool = False
    # Guessed new, not read (`Batch.new_ids`): inserted before anything else is written.
    guessed: bool = False
    # The record that last wrote it in the batch (None: written outside any record).
    source: tuple[str, int, int] | None = None
    # Its outbox is wholly published by the batch, and marked so by `source` (OUTBOX_FROM):
    # it is not emptied by a second write.
    marked: bool = False
    # Read from what a sweep saw (`Batch.get`), not from the database: replaced before
    # anything else is written, its revision the check.
    seen: bool = False


@dataclass
class _Outbox:
    """A document whose outbox the batch publishes: the entries it has taken (the first
    ones of the document's outbox, as stored)."""

    documents: Batched
    taken: list[Any] = field(default_factory=list)

    def fresh(self, document: Mapping[str, Any]) -> list[Any]:
        """The entries of the document's outbox not taken yet."""
        taken = {entry["event_id"] for entry in self.taken}
        return [e for e in document.get("outbox", ()) if e["event_id"] not in taken]


@dataclass
class Batch:
    cache: StateCache
    publish_all: PublishAll
    # Held while a write of one document runs (WRITES_AT_ONCE per process: see the module's
    # docstring).
    updating: asyncio.Semaphore
    reads: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(READS_AT_ONCE))
    changes: dict[tuple[str, str], _Change] = field(default_factory=dict)
    outboxes: dict[tuple[str, str], _Outbox] = field(default_factory=dict)
    # Every message of the batch, in the order the handlers made them.
    messages: list[OutboxEntry] = field(default_factory=list)
    # Records dead-lettered in the batch, sent once it is stored: a batch handled again, or
    # fetched again after a crash, dead-letters each once.
    dead_letters: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # What the batch read from the database.
    read: set[tuple[str, str]] = field(default_factory=set)
    # Whether aggregates being created may be guessed new; the ids of those being created
    # now (Records adds each around its creating message); what was guessed so.
    guess: bool = True
    new_ids: set[str] = field(default_factory=set)
    guessed: dict[tuple[str, str], Batched] = field(default_factory=dict)
    # Marks the documents whose outboxes the batch empties once it has published them.
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Tells an outbox another batch left (OUTBOX_FROM) published (None: never).
    published: Published | None = None
    # What the batch knows of documents not kept between batches (`Batched.kept`).
    unkept: dict[tuple[str, str], Document | None] = field(default_factory=dict)
    # The documents it took from what a sweep saw, not yet confirmed by a write (`get`).
    seen: set[tuple[str, str]] = field(default_factory=set)
    # Seconds each step of its commit took (`commit`), for /metrics.
    steps: dict[str, float] = field(default_factory=dict)
    # What changes in memory only once the batch is stored and published (a released
    # parked record's key let go): a batch that fails changes nothing.
    stored: list[Callable[[], None]] = field(default_factory=list)

    def forget(self) -> None:
        """After a failure: what the batch read or wrote may be ahead of the database (or
        behind it, after a partial write), so it is read again next time."""
        self.cache.forget([*self.changes, *self.outboxes, *self.read, *self.guessed])

    def _known(self, documents: Batched, key: tuple[str, str]) -> tuple[bool, Document | None]:
        if documents.kept:
            return self.cache.get(key)
        return key in self.unkept, self.unkept.get(key)

    def _remember(self, documents: Batched, key: tuple[str, str], stored: Document | None) -> None:
        if documents.kept:
            self.cache.put(key, stored)
        else:
            self.unkept[key] = stored

    # --- what the handlers' collections ask ----------------------------------------------

    async def get(self, documents: Batched, document_id: str) -> Document | None:
        """The document as the batch has it, read from the database if it is not known."""
        key = (documents.name, document_id)
        change = self.changes.get(key)
        if change is not None and change.blind:
            async with self.reads:
                stored = await documents.read(document_id)
            stored = await _unpublished_only(stored, self.published)
            if change.blind:
                change.blind = False
                if stored is not None:
                    self._existed(key, stored)
        elif change is None and not self._known(documents, key)[0]:
            if document_id in self.new_ids:
                self.guessed[key] = documents  # checked when the batch is stored
                self._remember(documents, key, None)
                return None
            if documents.listing is not None and documents.listing.absent(document_id):
                # Not listed: there is none. Not kept either: a new recipient's inbox would
                # push aggregates out of the cache, and the listing answers again.
                return None
            seen = self.cache.take_seen(key) if trusting_seen.get() else None
            if seen is not None:  # as the sweep read it: checked by its write (`settle_seen`)
                self.seen.add(key)
                stored = bson.decode(seen, documents.collection.codec_options)
            else:
                async with self.reads:
                    stored = await documents.read(document_id)
            stored = await _unpublished_only(stored, self.published)
            if key not in self.changes:  # (another aggregate's run may have written it)
                self._remember(documents, key, stored)
                self.read.add(key)
        return self.peek(documents, document_id)

    def settle_seen(self, documents: Batched, document_id: str) -> None:
        """After the rule of the record that took a seen document: if it wrote nothing, the
        document is forgotten (the next reader reads the database: what it saw may be out
        of date, and only a write would have told); if it wrote it, that write goes first
        and checks it."""
        key = (documents.name, document_id)
        if key not in self.seen:
            return
        self.seen.discard(key)
        change = self.changes.get(key)
        if change is None:
            self.cache.forget([key])
            self.unkept.pop(key, None)
        else:
            change.seen = True

    def peek(self, documents: Batched, document_id: str) -> Document | None:
        """The document as the batch has it now; known, because `get` was awaited first.
        A check and the write it decides are made with no await in between, so that two
        runs of the batch writing one document (two offers naming one new Talent Cloud)
        see each other's writes."""
        key = (documents.name, document_id)
        change = self.changes.get(key)
        found = change.now if change is not None else self._known(documents, key)[1]
        return None if found is None else dict(found)

    async def find(self, documents: Batched, field_: str, value: Any) -> list[Document]:
        """The stored matches, as the batch has changed them."""
        async with self.reads:
            stored = await documents.read_all(field_, value)
        found = {document["_id"]: document for document in stored}
        for (name, document_id), change in self.changes.items():
            if name != documents.name:
                continue
            found.pop(document_id, None)
            if change.now is not None and change.now.get(field_) == value:
                found[document_id] = change.now
        return [dict(document) for document in found.values()]

    def insert_blind(self, documents: Batched, document: Document) -> bool:
        """A write-once document stored without reading first: most are new, and a repeat
        (a redelivered record) is found by the insert itself (`_existed`)."""
        key = (documents.name, document["_id"])
        if key in self.changes or self._known(documents, key)[0]:
            return False
        self.changes[key] = _Change(documents, None, document, blind=True, source=_source())
        return True

    def _existed(self, key: tuple[str, str], stored: Document) -> None:
        """A blind insert's document was there already: the batch forgets its own, sends
        nothing of it, and publishes what the stored one has left unpublished instead."""
        change = self.changes.pop(key)
        outbox = self.outboxes.pop(key, None)
        if outbox is not None:
            dropped = {entry["event_id"] for entry in outbox.taken}
            self.messages = [m for m in self.messages if m.message_id not in dropped]
        self._remember(change.documents, key, stored)
        if stored.get("outbox"):
            self.take_outbox(change.documents, key[1])

    def write(self, documents: Batched, document: Document) -> None:
        """The document as it is now (it must have been read through the batch)."""
        key = (documents.name, document["_id"])
        change = self.changes.get(key)
        if change is None:
            _, before = self._known(documents, key)
            change = self.changes[key] = _Change(documents, before, None)
            change.guessed = key in self.guessed
        change.source = _source()
        outbox = self.outboxes.get(key)
        if outbox is not None and outbox.taken:
            # What the batch took of its outbox is not published yet: it stays stored with
            # the document until it is (a write replaces the document's outbox).
            document = {**document, "outbox": [*outbox.taken, *outbox.fresh(document)]}
            for name in _OUTBOX_FIELDS:
                document.setdefault(name, (change.now or change.before or {}).get(name, True))
        change.now = document

    def delete(self, documents: Batched, document_id: str) -> None:
        key = (documents.name, document_id)
        change = self.changes.get(key)
        if change is None:
            _, before = self._known(documents, key)
            change = self.changes[key] = _Change(documents, before, None)
        change.now = None

    def take_outbox(self, documents: Batched, document_id: str) -> None:
        """The unit of work's flush: the document's outbox is published with the batch."""
        key = (documents.name, document_id)
        change = self.changes.get(key)
        stored = change.now if change is not None else self._known(documents, key)[1]
        if stored is None:
            return
        outbox = self.outboxes.setdefault(key, _Outbox(documents))
        fresh = outbox.fresh(stored)
        self.messages.extend(outbox_of({"outbox": fresh}))
        outbox.taken.extend(fresh)

    def publish(self, entries: Sequence[OutboxEntry]) -> None:
        """Messages not stored anywhere (derived again on a redelivery): sent with the
        batch's, in order."""
        self.messages.extend(entries)

    # --- the batch's I/O ----------------------------------------------------------------

    async def commit(self) -> None:
        by_collection: dict[str, list[_Change]] = {}
        for key, change in self.changes.items():
            by_collection.setdefault(key[0], []).append(change)
            outbox = self.outboxes.get(key)
            if change.now and change.now.get("outbox") and outbox and not outbox.fresh(change.now):
                # Wholly published below: marked by the record that wrote it, whose offset
                # is committed only after that; else emptied by one statement for the batch.
                if change.source is not None:
                    kept = {k: v for k, v in change.now.items() if k not in _OUTBOX_FIELDS}
                    change.now = {**kept, OUTBOX_FROM: list(change.source)}
                    change.marked = True
                else:
                    change.now = {**change.now, OUTBOX_BATCH: self.token}
        step = self._step()
        try:
            await self._replace_seen()
            await self._insert_new()
        except (GuessedWrong, BatchWriteConflict):
            self.forget()  # the guesses are in the cache: read next time
            raise
        step("checking")
        await asyncio.gather(*(self._store(changes) for changes in by_collection.values()))
        step("storing")
        crash_point("after_write")
        if self.messages:
            await self.publish_all(self.messages)
        await asyncio.gather(*(send() for send in self.dead_letters))
        step("publishing")
        await asyncio.gather(
            *(self._empty_outboxes(name, changes) for name, changes in by_collection.items()),
            self._empty_unchanged(),
        )
        for (name, document_id), change in self.changes.items():
            if change.documents.kept:
                self.cache.put((name, document_id), change.now)
        for done in self.stored:
            done()
        step("finishing")

    def _step(self) -> Callable[[str], None]:
        """Records the seconds each step of the commit took, in `steps` (for /metrics)."""
        started = time.perf_counter()

        def done(name: str) -> None:
            nonlocal started
            now = time.perf_counter()
            self.steps[name] = now - started
            started = now

        return done

    async def _replace_seen(self) -> None:
        """Step 0, first: the documents changed from what a sweep saw, replaced at the
        revision it saw. One changed since (and not in the cache, which `get` asks first)
        matches nothing: the batch raises BatchWriteConflict with nothing else stored, and
        is handled again from fresh reads."""
        by_collection: dict[str, tuple[Batched, list[ReplaceOne[Document]]]] = {}
        for change in self.changes.values():
            if change.seen and change.before is not None and change.now is not None:
                _, writes = by_collection.setdefault(change.documents.name, (change.documents, []))
                writes.append(ReplaceOne(_where(change.before), change.now))
        for name, (documents, writes) in by_collection.items():
            matched = await documents.bulk(writes, self.updating)
            if matched < len(writes):
                raise BatchWriteConflict(
                    f"{len(writes) - matched} document(s) of {name} changed after the sweep "
                    "read them; handling the batch again from fresh reads"
                )

    async def _insert_new(self) -> None:
        """Step 0: the documents the batch believes new (read and found absent, or guessed
        new), inserted before anything else is written, on their own: their unique `_id` is
        the check. Guessed documents the batch only read are read now. If one is there
        after all, what this step inserted is deleted again (the batch's own, unpublished)
        and GuessedWrong is raised for a guess, BatchWriteConflict for a document written
        by someone else since it was read (the one such writer there may be: another
        partition's offer claiming the same new Talent Cloud)."""
        inserts: dict[str, list[_Change]] = {}
        unwritten: list[tuple[Batched, str]] = []
        for change in self.changes.values():
            if _checked_first(change):
                inserts.setdefault(change.documents.name, []).append(change)
        for key, documents in self.guessed.items():
            written = self.changes.get(key)
            if written is None or not written.guessed or written.now is None:
                unwritten.append((documents, key[1]))

        async def exists(documents: Batched, document_id: str) -> bool:
            async with self.reads:
                return await documents.read(document_id) is not None

        if any(await asyncio.gather(*(exists(d, i) for d, i in unwritten))):
            raise GuessedWrong("an aggregate taken to be new (not read) exists already")

        async def insert(changes: list[_Change]) -> tuple[Batched, list[str], list[_Change]]:
            documents = changes[0].documents
            new = [c.now for c in changes if c.now]
            taken = set(await documents.insert_all(new, self.updating))
            ids = [c.now["_id"] for n, c in enumerate(changes) if c.now and n not in taken]
            return documents, ids, [c for n, c in enumerate(changes) if n in taken]

        inserted = await asyncio.gather(*(insert(c) for c in inserts.values()))
        there = [change for _, _, found in inserted for change in found]
        if not there:
            return
        for documents, ids, _ in inserted:
            if ids:
                await documents.bulk([DeleteOne({"_id": i}) for i in ids], self.updating)
        named = ", ".join(f"{c.documents.name} {c.now and c.now['_id']!r}" for c in there[:3])
        named += ", ..." if len(there) > 3 else ""
        if any(change.guessed for change in there):
            raise GuessedWrong(f"{len(there)} document(s) taken to be new exist already ({named})")
        raise BatchWriteConflict(
            f"{named} exist(s) already: written by someone else since this batch read it"
        )

    async def _store(self, changes: list[_Change]) -> None:
        """Step 1: write-once documents in one insert_many (a repeat keeps the stored one),
        the other new ones in another (read and found absent, with this process their one
        writer: there is nothing to check first), changed ones replaced."""
        documents = changes[0].documents
        inserts = [c for c in changes if c.before is None and c.now is not None and c.blind]
        replaces = [
            ReplaceOne(_where(c.before), c.now)
            for c in changes
            if c.before and c.now and not c.seen  # (those went first: `_replace_seen`)
        ]
        new = [
            c.now
            for c in changes
            if c.before is None and c.now is not None and not c.blind and not _checked_first(c)
        ]
        if new and await documents.insert_all(new, self.updating):
            raise BatchWriteConflict(
                f"a document of {documents.name} this batch read and found absent was written "
                "by someone else before the batch wrote it; handling it again"
            )
        if inserts:
            for index in await documents.insert_all(
                [c.now for c in inserts if c.now], self.updating
            ):
                change = inserts[index]
                assert change.now is not None
                async with self.reads:
                    stored = await documents.read(change.now["_id"])
                stored = await _unpublished_only(stored, self.published)
                if stored is not None:
                    self._existed((documents.name, change.now["_id"]), stored)
        if replaces:
            matched = await documents.bulk(replaces, self.updating)
            if matched < len(replaces):
                raise BatchWriteConflict(
                    f"{len(replaces) - matched} document(s) of {documents.name} were written "
                    "by someone else between this batch's read and its write; handling it "
                    "again"
                )

    async def _empty_outboxes(self, name: str, changes: list[_Change]) -> None:
        """Empties the outboxes this batch wrote and published, in one statement (an
        equality on the batch's token, which an index serves), then deletes what it deleted:
        a released parked record goes only once what it caused is stored and sent."""
        emptied = 0
        for change in changes:
            if change.now is None or self.changes.get((name, change.now["_id"])) is not change:
                continue  # deleted, or a repeat of a stored write-once document (_existed)
            if change.marked:
                change.now = _without_outbox(change.now)  # kept so: it is published
            elif change.now.get(OUTBOX_BATCH) == self.token:
                change.now = _without_outbox(change.now)
                emptied += 1
        documents = changes[0].documents
        if emptied:
            matched = await documents.empty_outboxes(self.token)
            if matched < emptied:
                raise BatchWriteConflict(
                    f"{emptied - matched} document(s) of {name} changed behind this batch "
                    "before their outboxes were emptied"
                )
        deleted = [DeleteOne({"_id": c.before["_id"]}) for c in changes if c.before and not c.now]
        if deleted:
            await documents.bulk(deleted, self.updating)

    async def _empty_unchanged(self) -> None:
        """The outboxes the batch published of documents it did not change (left by a
        crash): emptied one by one, at the revision read."""
        by_collection: dict[str, tuple[Batched, list[UpdateOne]]] = {}
        for key, outbox in self.outboxes.items():
            if key in self.changes or not outbox.taken:
                continue
            stored = self._known(outbox.documents, key)[1]
            if stored is None:
                continue
            self._remember(outbox.documents, key, _without_outbox(stored))
            _, updates = by_collection.setdefault(key[0], (outbox.documents, []))
            updates.append(UpdateOne(_where(stored), {"$set": {"outbox": []}, "$unset": _UNSET}))
        for documents, updates in by_collection.values():
            await documents.bulk(updates, self.updating)


def _checked_first(change: _Change) -> bool:
    """A new document inserted in step 0, before anything else is written, as the check:
    one guessed new (not read), or one of a collection other partitions also write."""
    new = change.before is None and change.now is not None and not change.blind
    return new and (change.guessed or change.documents.shared)


def _without_outbox(document: Document) -> Document:
    emptied = {k: v for k, v in document.items() if k not in _OUTBOX_FIELDS and k != OUTBOX_FROM}
    emptied["outbox"] = []
    return emptied


def _source() -> tuple[str, int, int] | None:
    now = handling.get()
    return None if now is None else now.source


async def _unpublished_only(
    document: Document | None, published: Published | None
) -> Document | None:
    """The stored document, its outbox left out if a batch published it (OUTBOX_FROM, and
    that record's offset committed): as if it had been emptied."""
    if document is None or not document.get("outbox") or published is None:
        return document
    source = document.get(OUTBOX_FROM)
    if source is None or not await published(source):
        return document
    return _without_outbox(document)


def _where(document: Mapping[str, Any]) -> Document:
    """The filter of a write: the document at the revision the batch read (if it has one)."""
    where: Document = {"_id": document["_id"]}
    if "revision" in document:
        where["revision"] = document["revision"]
    return where


current: ContextVar[Batch | None] = ContextVar("current_batch", default=None)
# Set while a row that may take what a sweep saw loads its aggregate (`Decides.seen`).
trusting_seen: ContextVar[bool] = ContextVar("trusting_seen", default=False)


class Batched(MongoDocuments):
    """A collection that the handlers write: through the open batch if there is one,
    straight to the database otherwise (start-up, the read API, the sweeps).

    `shared`: its documents are written from more than one partition (a Talent Cloud's
    claim, by the first offer of any partition that names it), so one read and found absent
    may be there by the time the batch writes: it is inserted in the batch's first step, as
    the check. Every other document has one writer, this batch's process.

    `kept`: its documents are kept in the StateCache between batches (aggregates); False
    for write-once and per-command documents, which no rule reads twice.

    `listing`: all its ids, kept by the StateCache (`Listing`), for a collection whose
    documents are few: an id not listed is not read. Every write here lists its id."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        *,
        shared: bool = False,
        kept: bool = True,
        listing: Listing | None = None,
    ) -> None:
        super().__init__(collection)
        self.shared = shared
        self.kept = kept
        self.listing = listing

    def _listed(self, document_id: str) -> None:
        if self.listing is not None:
            self.listing.add(document_id)

    async def get(self, document_id: str) -> Document | None:
        batch = current.get()
        if batch is None:
            now = handling.get()
            stored = await super().get(document_id)
            return await _unpublished_only(stored, None if now is None else now.published)
        return await batch.get(self, document_id)

    async def find(self, field: str, value: Any) -> list[Document]:
        batch = current.get()
        if batch is None:
            return await super().find(field, value)
        return await batch.find(self, field, value)

    async def insert(self, document: Document) -> bool:
        self._listed(document["_id"])
        batch = current.get()
        if batch is None:
            return await super().insert(document)
        await batch.get(self, document["_id"])
        if batch.peek(self, document["_id"]) is not None:
            return False
        batch.write(self, document)
        return True

    async def insert_write_once(self, document: Document) -> bool:
        self._listed(document["_id"])
        batch = current.get()
        if batch is not None and batch.insert_blind(self, document):
            return True
        return await self.insert(document)

    async def replace(self, document: Document, *, revision: int) -> bool:
        self._listed(document["_id"])
        batch = current.get()
        if batch is None:
            return await super().replace(document, revision=revision)
        await batch.get(self, document["_id"])
        stored = batch.peek(self, document["_id"])
        if stored is None or stored.get("revision") != revision:
            return False
        batch.write(self, document)
        return True

    async def update(
        self,
        document_id: str,
        set_fields: Mapping[str, Any],
        *,
        unset: Sequence[str] = (),
        where: Mapping[str, Any] | None = None,
    ) -> bool:
        self._listed(document_id)
        batch = current.get()
        if batch is None:
            return await super().update(document_id, set_fields, unset=unset, where=where)
        await batch.get(self, document_id)
        stored = batch.peek(self, document_id)
        if stored is None or not matches(stored, where):
            return False
        batch.write(self, updated(stored, set_fields, unset))
        return True

    async def increment(self, document_id: str, field: str) -> int:
        self._listed(document_id)
        batch = current.get()
        if batch is None:
            return await super().increment(document_id, field)
        await batch.get(self, document_id)
        counter = batch.peek(self, document_id) or {"_id": document_id}
        value: int = counter.get(field, 0) + 1
        batch.write(self, {**counter, field: value})
        return value

    async def delete(self, document_id: str) -> None:
        batch = current.get()
        if batch is None:
            await super().delete(document_id)
        else:
            await batch.get(self, document_id)  # what is deleted must be known to be there
            batch.delete(self, document_id)

    # --- the batch's own I/O ----------------------------------------------------------------

    async def read(self, document_id: str) -> Document | None:
        return await super().get(document_id)

    async def read_all(self, field: str, value: Any) -> list[Document]:
        return await super().find(field, value)

    async def insert_all(self, documents: list[Document], updating: asyncio.Semaphore) -> list[int]:
        """Inserts them all, in commands of INSERTED_TOGETHER side by side (as many as
        `updating` lets); the positions of those whose `_id` exists already."""

        async def insert(start: int) -> list[int]:
            async with updating:
                try:
                    await self.collection.insert_many(
                        documents[start : start + INSERTED_TOGETHER], ordered=False
                    )
                except BulkWriteError as error:
                    errors = error.details.get("writeErrors", ())
                    if any(e.get("code") != DUPLICATE_KEY for e in errors):
                        raise
                    return [start + e["index"] for e in errors]
            return []

        try:
            async with asyncio.TaskGroup() as group:
                done = [
                    group.create_task(insert(start))
                    for start in range(0, len(documents), INSERTED_TOGETHER)
                ]
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return [position for task in done for position in task.result()]

    async def empty_outboxes(self, token: str) -> int:
        result = await self.collection.update_many(
            {OUTBOX_BATCH: token}, {"$set": {"outbox": []}, "$unset": _UNSET}
        )
        return result.matched_count

    async def bulk(
        self,
        writes: Sequence[ReplaceOne[Document] | UpdateOne | DeleteOne],
        updating: asyncio.Semaphore,
    ) -> int:
        """Matched (or deleted) count of `writes`: each its own command, as many side by
        side as `updating` lets (see the module's docstring)."""

        async def write(one: ReplaceOne[Document] | UpdateOne | DeleteOne) -> int:
            async with updating:
                result = await self.collection.bulk_write([one])
            return result.matched_count + result.deleted_count

        try:
            async with asyncio.TaskGroup() as group:
                done = [group.create_task(write(one)) for one in writes]
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return sum(task.result() for task in done)


__all__ = [
    "Batch",
    "BatchWriteConflict",
    "Batched",
    "GuessedWrong",
    "Handling",
    "Listing",
    "Published",
    "StateCache",
    "current",
    "handling",
    "trusting_seen",
]
