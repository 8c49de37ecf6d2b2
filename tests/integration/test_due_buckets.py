"""The sweeps' due buckets (services.runtime.due) on the real database: everything due is
found by equality on its bucket, however long ago it fell due, and the stored cursor moves
on only past buckets with nothing left in them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from contracts.internal import ExpireOffer
from services.runtime import due as due_module
from services.runtime.due import BUCKET_SECONDS, FIELD, DueBuckets, due_bucket
from services.runtime.outbox import OutboxEntry
from services.runtime.requests import Requests
from tests.infrastructure import Endpoints
from tests.kit import new_id

pytestmark = pytest.mark.integration

Document = dict[str, Any]
NOW = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)


@pytest.fixture
async def database(infra: Endpoints) -> AsyncIterator[AsyncDatabase[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    db = client[f"test_due_{new_id('db')}"]
    yield db
    await client.drop_database(db.name)
    await client.close()


async def store(db: AsyncDatabase[Document], *due: datetime) -> list[str]:
    ids = [f"item-{i}" for i in range(len(due))]
    await db["items"].insert_many(
        [
            {"_id": item, "due_at": at, FIELD: due_bucket(at)}
            for item, at in zip(ids, due, strict=True)
        ]
    )
    return ids


def done_by(
    db: AsyncDatabase[Document],
    taken: list[str],
    now: datetime = NOW,
    skip: frozenset[str] = frozenset(),
) -> Callable[[Document], Awaitable[bool]]:
    """A sweep's handler: does what is due and not another instance's, and says so."""

    async def handle(document: Document) -> bool:
        if document["_id"] in skip or document["due_at"] > now:
            return False
        taken.append(document["_id"])
        await db["items"].update_one({"_id": document["_id"]}, {"$unset": {FIELD: ""}})
        return True

    return handle


async def cursor(db: AsyncDatabase[Document]) -> int:
    found = await db["sweeps"].find_one({"_id": "items"})
    assert found is not None
    return int(found["bucket"])


async def test_a_sweep_after_a_long_stop_finds_everything_due_and_nothing_early(
    database: AsyncDatabase[Document],
) -> None:
    due = DueBuckets(database["items"], database["sweeps"], "items")
    await due.ensure_ready(NOW - timedelta(hours=6))  # the service started 6 hours ago
    overdue = [NOW - timedelta(hours=5, minutes=m) for m in (0, 1, 7)]
    early = NOW + timedelta(seconds=10)  # in the current bucket, but not due yet
    ids = await store(database, *overdue, NOW - timedelta(seconds=20), early)
    taken: list[str] = []
    assert await due.sweep(NOW, done_by(database, taken)) == 4
    assert sorted(taken) == sorted(ids[:4])
    # Past the emptied buckets, not into the ones the clocks could still disagree on.
    assert await cursor(database) == due_bucket(NOW) - 1
    taken.clear()
    assert await due.sweep(NOW, done_by(database, taken)) == 0
    later = NOW + timedelta(seconds=BUCKET_SECONDS)
    assert await due.sweep(later, done_by(database, taken, later)) == 1
    assert taken == [ids[4]]


async def test_the_cursor_waits_for_work_left_to_another_instance(
    database: AsyncDatabase[Document],
) -> None:
    due = DueBuckets(database["items"], database["sweeps"], "items")
    start = NOW - timedelta(hours=1)
    await due.ensure_ready(start)
    first = await cursor(database)
    ids = await store(database, NOW - timedelta(minutes=30), NOW - timedelta(minutes=10))
    taken: list[str] = []
    await due.sweep(NOW, done_by(database, taken, skip=frozenset(ids[:1])))  # not its own
    assert taken == [ids[1]]
    assert await cursor(database) == due_bucket(NOW - timedelta(minutes=30))
    await due.sweep(NOW, done_by(database, taken))  # its owner's pass
    assert taken == [ids[1], ids[0]]
    assert await cursor(database) > first
    await due.ensure_ready(NOW + timedelta(days=1))  # a restart keeps the stored cursor
    assert await cursor(database) == due_bucket(NOW) - 1


async def test_asking_for_many_due_documents_publishes_each_ask_once_a_page_at_a_time(
    database: AsyncDatabase[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(due_module, "PAGE_SIZE", 500)
    due = DueBuckets(database["items"], database["sweeps"], "items", fields=("due_at",))
    await due.ensure_ready(NOW - timedelta(hours=1))
    at = NOW - timedelta(minutes=30)
    ids = await store(database, *[at] * 1200, NOW + timedelta(seconds=10))  # the last not due
    published: list[list[OutboxEntry]] = []

    async def publish(entries: Sequence[OutboxEntry]) -> None:
        published.append(list(entries))

    requests = Requests(publish, "items.internal")
    pages: list[int] = []

    async def ask(page: list[Document]) -> int:  # as Kit.asking_sweep asks
        pages.append(len(page))
        assert all(set(document) == {"_id", "due_at"} for document in page)  # the projection
        await requests.send_many(
            ExpireOffer(command_id=f"expire-{d['_id']}", offer_id=d["_id"])
            for d in page
            if d["due_at"] <= NOW
        )
        return 0  # their handler takes them out of their bucket, later

    assert await due.sweep_pages(NOW, ask) == 0
    assert sorted(pages) == [1, 200, 500, 500]
    assert len(published) == 3  # one publish per page with anything to ask
    asked = [entry.key for call in published for entry in call]
    assert sorted(asked) == sorted(ids[:1200])
    await due.sweep_pages(NOW, ask)  # the next pass, within the quiet period: nothing again
    assert len(published) == 3
    assert await cursor(database) == due_bucket(at)  # waits for their handler


async def test_what_a_pass_read_ahead_is_handed_first_on_the_next_one(
    database: AsyncDatabase[Document],
) -> None:
    due = DueBuckets(database["items"], database["sweeps"], "items", ahead=timedelta(minutes=1))
    await due.ensure_ready(NOW - timedelta(minutes=5))
    soon = NOW.replace(second=0) + timedelta(seconds=BUCKET_SECONDS + 10)  # the next bucket
    ids = await store(database, soon, soon, soon + timedelta(minutes=5))  # the last: too far
    handed: list[list[str]] = []

    async def ask(page: list[Document]) -> int:
        handed.append([document["_id"] for document in page])
        return 0

    await due.sweep_pages(NOW, ask)
    assert handed == []  # nothing in the buckets up to now; the next bucket read ahead
    await database["items"].delete_many({})  # done meanwhile by their writer
    later = soon + timedelta(seconds=5)
    assert await due.sweep_pages(later, ask) == 0
    # Handed as they were read, before the buckets' own reads (which found nothing now).
    assert handed == [ids[:2]]
    handed.clear()
    await due.sweep_pages(later, ask)  # handed once: the last pass read nothing ahead
    assert handed == []


async def test_a_sweep_that_hands_on_what_it_read_reads_whole_documents_once(
    database: AsyncDatabase[Document],
) -> None:
    """`seen` gets each whole document as the BSON read, as soon as its page is; `handle`
    still gets only `fields` of each, as with a projection."""
    seen: list[tuple[str, bytes]] = []
    due = DueBuckets(
        database["items"], database["sweeps"], "items", fields=("due_at",), seen=seen.extend
    )
    await due.ensure_ready(NOW - timedelta(minutes=5))
    ids = await store(database, NOW - timedelta(minutes=2), NOW - timedelta(minutes=1))
    await database["items"].update_many({}, {"$set": {"terms": {"title": "x" * 300}}})
    handed: list[Document] = []

    async def handle(page: list[Document]) -> int:
        handed.extend(page)
        return 0

    await due.sweep_pages(NOW, handle)
    assert [document_id for document_id, _ in seen] == ids
    stored = {d["_id"]: d async for d in database["items"].find({})}
    for document_id, raw in seen:
        assert bson.decode(raw, database.codec_options) == stored[document_id]
    assert handed == [{"_id": i, "due_at": stored[i]["due_at"]} for i in ids]
