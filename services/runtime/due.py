"""Work that falls due (offer expiry, reminders), found by equality instead of by range.

FerretDB 1.x never pushes a range (`expires_at <= now`) down to PostgreSQL, so a sweep
asking for "everything due" would read every candidate document on each pass. Instead each
document waiting for a moment carries `due_bucket`: the number of the minute it falls due
in, while it still waits, and nothing once it is done. A sweep then asks for one bucket at
a time by equality, an index lookup on any backend, from the oldest bucket that may still
hold work up to the current one.

That oldest bucket is kept in a `sweeps` document per kind of work. It moves on only past a
bucket that is wholly in the past and that a pass found with nothing left in it, so work
that another instance owns (and has not done yet) is found again on the next pass. Several
instances may write it; a lost write only moves it back, which costs a rescan, never a
missed item.

A burst (thousands falling due in the same minute) costs FerretDB about a third of a
millisecond per document to find, whatever the projection: it decodes each whole stored
document. So a sweep given `ahead` (its interval) also reads, at the end of each pass, the
buckets that fall due before its next pass, and the next pass first asks for what that read
found; its own bucket reads then go on as always and still decide what is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from contextlib import aclosing, suppress
from datetime import datetime, timedelta
from typing import Any, TypeVar

import bson
from bson.raw_bson import RawBSONDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

Document = dict[str, Any]
D = TypeVar("D")

BUCKET_SECONDS = 60
# Buckets this close to now are not yet called done: the clocks of the instances that
# stored the work and of the one sweeping may differ by a little.
CLOCK_SKEW = timedelta(seconds=BUCKET_SECONDS)
# Documents per round trip while a bucket is read, and per call of a page's handler. Each
# document read costs FerretDB far more (decoding the whole stored document) than a round
# trip does, so a larger page saves little there; it saves the handler's calls, which ask
# for a page's work together.
PAGE_SIZE = 5000

# Documents a pass keeps of what falls due before the next one (sweep_pages' `ahead`).
AHEAD_MAX = 50_000

FIELD = "due_bucket"


def due_bucket(at: datetime) -> int:
    """The bucket of a moment: minutes since the epoch."""
    return int(at.timestamp()) // BUCKET_SECONDS


class DueBuckets:
    """The due work of one collection: `sweep` hands each document of each bucket that may
    hold due work to `handle`, which says whether the document has left its bucket."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        sweeps: AsyncCollection[Document],
        name: str,
        fields: tuple[str, ...] | None = None,
        ahead: timedelta = timedelta(0),
        seen: Callable[[list[tuple[str, bytes]]], None] | None = None,
    ) -> None:
        self.collection = collection
        self.sweeps = sweeps
        self.name = name
        # What `handle` reads of each document (all of it when None): less to send and decode.
        self.projection = None if fields is None else dict.fromkeys(fields, 1)
        # Given, the whole documents are read and handed to it as BSON, (_id, bytes), as
        # soon as a page is read (the handlers then need not read them again); `handle`
        # still gets `fields` of each.
        self.seen = seen
        # How far past now a pass also reads (see sweep_pages); the pages it read.
        self.ahead = ahead
        self._seen_ahead: list[list[Document]] = []

    async def ensure_ready(self, now: datetime) -> None:
        """The index, and the first bucket to look at. Called before anything is stored:
        whatever is stored later falls due after `now`."""
        await self.collection.create_index(FIELD)
        with suppress(DuplicateKeyError):
            await self.sweeps.insert_one({"_id": self.name, "bucket": due_bucket(now - CLOCK_SKEW)})

    async def sweep(self, now: datetime, handle: Callable[[Document], Awaitable[bool]]) -> int:
        """Hands every document of every bucket up to now to `handle`; returns how many it
        took out of their buckets."""

        async def each(page: list[Document]) -> int:
            taken = 0
            for document in page:
                taken += await handle(document)
            return taken

        return await self.sweep_pages(now, each)

    async def sweep_pages(
        self, now: datetime, handle: Callable[[list[Document]], Awaitable[int]]
    ) -> int:
        """Hands every document of every bucket up to now to `handle`, a page (up to
        PAGE_SIZE documents of one bucket) at a time; `handle` returns how many of the page
        it took out of their bucket, and this how many it took in all.

        With `ahead`, a pass also reads the buckets that fall due before the next pass
        (up to AHEAD_MAX documents), and the next pass first hands those pages to `handle`
        as they were read, before reading its buckets as always: work falling due in a burst
        is asked for without waiting for the database to decode it all again. Only for a
        `handle` that merely asks (a read-ahead document may have changed since), and what
        the buckets' own reads find still decides what is done."""
        seen_ahead, self._seen_ahead = self._seen_ahead, []
        for page in seen_ahead:
            await handle(page)
        found = await self.sweeps.find_one({"_id": self.name})
        first = found["bucket"] if found else due_bucket(now - CLOCK_SKEW)
        settled = due_bucket(now - CLOCK_SKEW)  # buckets before this one are wholly past
        done_until = first
        taken = 0
        current = due_bucket(now)
        keep: list[list[Document]] = []  # with `ahead`: the current bucket's pages not done
        for bucket in range(first, current + 1):
            emptied = True
            async with aclosing(_prefetching(self._pages(bucket))) as pages:
                async for page in pages:
                    took = await handle(page)
                    taken += took
                    emptied = emptied and took == len(page)
                    if self.ahead and bucket == current and took < len(page):
                        keep.append(page)
            if emptied and bucket == done_until and bucket < settled:
                done_until = bucket + 1
        if done_until > first:
            await self.sweeps.update_one({"_id": self.name}, {"$max": {"bucket": done_until}})
        if self.ahead > timedelta(0):
            self._seen_ahead = await self._pages_ahead(now, keep)
        return taken

    async def _pages_ahead(
        self, now: datetime, pages: list[list[Document]]
    ) -> list[list[Document]]:
        kept = sum(map(len, pages))
        for bucket in range(due_bucket(now) + 1, due_bucket(now + self.ahead) + 1):
            async with aclosing(_prefetching(self._pages(bucket))) as read:
                async for page in read:
                    kept += len(page)
                    if kept > AHEAD_MAX:  # a burst too large to keep: the buckets' reads find it
                        return []
                    pages.append(page)
        return pages

    async def _pages(self, bucket: int) -> AsyncGenerator[list[Document]]:
        if self.seen is None:
            cursor = self.collection.find({FIELD: bucket}, self.projection, batch_size=PAGE_SIZE)
            async for page in _paged(cursor):
                yield page
            return
        # Whole, as the BSON read: handed on to `seen`, and `fields` of each to the caller.
        options = self.collection.codec_options
        raw = self.collection.with_options(
            codec_options=options.with_options(document_class=RawBSONDocument)
        )
        async for raws in _paged(raw.find({FIELD: bucket}, batch_size=PAGE_SIZE)):
            documents = [bson.decode(r.raw, options) for r in raws]
            self.seen([(d["_id"], bytes(r.raw)) for d, r in zip(documents, raws, strict=True)])
            if self.projection is None:
                yield documents
            else:
                wanted = ("_id", *self.projection)
                yield [{k: d[k] for k in wanted if k in d} for d in documents]


async def _paged(cursor: AsyncIterable[D]) -> AsyncGenerator[list[D]]:
    """The cursor's documents, PAGE_SIZE at a time."""
    page: list[D] = []
    async for document in cursor:
        page.append(document)
        if len(page) == PAGE_SIZE:
            yield page
            page = []
    if page:
        yield page


async def _prefetching(pages: AsyncGenerator[list[Document]]) -> AsyncGenerator[list[Document]]:
    """The same pages, the next one already being read while the caller handles this one:
    the database decodes the next page while the handler asks for this one's work."""
    reading: asyncio.Future[list[Document] | None] = asyncio.ensure_future(anext(pages, None))
    try:
        while (page := await reading) is not None:
            reading = asyncio.ensure_future(anext(pages, None))
            yield page
    finally:  # the handler failed, or the caller stopped early: stop reading too
        reading.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await reading  # its own failure, if any, is the caller's failure's consequence
        await pages.aclose()
