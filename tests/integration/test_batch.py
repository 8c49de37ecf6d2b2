"""The batch (services.runtime.batch) on the real database: reads kept between batches,
writes and messages held until the batch commits, then stored, published in order and
emptied; a write-once document that exists already is not written again, and its own
unpublished messages go out instead of the new ones; a write behind the batch's back is a
conflict, not a lost write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import bson
import pytest
from pymongo import AsyncMongoClient

from services.runtime.batch import (
    INSERTED_TOGETHER,
    WRITES_AT_ONCE,
    Batch,
    Batched,
    BatchWriteConflict,
    GuessedWrong,
    Handling,
    Listing,
    Published,
    StateCache,
    current,
    handling,
    trusting_seen,
)
from services.runtime.documents import Document
from services.runtime.outbox import (
    OUTBOX_FROM,
    PENDING,
    OutboxEntry,
    ensure_outbox_indexes,
    outbox_fields,
)
from services.runtime.parking import Parking
from services.runtime.uow import UnitOfWork
from services.runtime.wire import RecordOrigin
from tests.infrastructure import Endpoints
from tests.kit import new_id

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 4, tzinfo=UTC)
T = TypeVar("T")


class Counting(Batched):
    """A collection that counts the batch's reads of the database."""

    reads = 0

    async def read(self, document_id: str) -> Document | None:
        Counting.reads += 1
        return await super().read(document_id)


class Wire:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.fail = False

    async def publish_all(self, entries: Sequence[OutboxEntry]) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.sent.extend(entry.message_id for entry in entries)


@pytest.fixture
async def collection(infra: Endpoints) -> AsyncIterator[Counting]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(infra.mongodb_url)
    database = client[new_id("batch")]
    things = Counting(database["things"])
    # As a store declares them: every query the services send is served by an index
    # (tests/integration/test_zz_query_plans.py checks these too).
    await ensure_outbox_indexes(things)
    await things.ensure_index("group")
    try:
        yield things
    finally:
        await client.drop_database(database.name)
        await client.close()


def entry(message_id: str, key: str = "k") -> OutboxEntry:
    return OutboxEntry("t", key, "Happened", message_id, "{}")


async def in_batch(
    cache: StateCache,
    wire: Wire,
    work: object,
    *,
    new_ids: set[str] | None = None,
    published: Published | None = None,
) -> Batch:
    batch = Batch(
        cache, wire.publish_all, asyncio.Semaphore(), new_ids=new_ids or set(), published=published
    )
    token = current.set(batch)
    try:
        await work  # type: ignore[misc]
    finally:
        current.reset(token)
    await batch.commit()
    return batch


async def test_writes_wait_for_the_commit_then_are_stored_published_in_order_and_emptied(
    collection: Counting,
) -> None:
    cache, wire = StateCache(), Wire()
    uow = UnitOfWork(wire.publish_all, lambda: NOW)
    batch = Batch(cache, wire.publish_all, asyncio.Semaphore())
    token = current.set(batch)
    try:
        for n in range(3):
            assert await uow.insert_once(collection, {"_id": f"d{n}"}, [entry(f"e{n}")])
        await uow.publish([entry("loose")])
    finally:
        current.reset(token)
    assert await collection.collection.count_documents({}) == 0  # nothing before the commit
    assert wire.sent == []

    await batch.commit()

    assert wire.sent == ["e0", "e1", "e2", "loose"]
    stored = await collection.collection.find({}).sort("_id").to_list()
    assert [d["_id"] for d in stored] == ["d0", "d1", "d2"]
    assert all(d["outbox"] == [] and PENDING not in d for d in stored)


async def test_only_the_documents_of_kept_collections_stay_in_the_cache(
    collection: Counting,
) -> None:
    """Write-once documents (kept=False) would push the aggregates out of the cache; what a
    batch read or wrote of them is forgotten with it, and read again by the next."""
    once = Counting(collection.collection.database["once"], kept=False)
    await ensure_outbox_indexes(once)
    await once.collection.insert_one({"_id": "old", "revision": 1, "outbox": []})
    await collection.collection.insert_one({"_id": "aggregate", "revision": 1})
    cache, wire = StateCache(), Wire()
    uow = UnitOfWork(wire.publish_all, lambda: NOW)

    async def work() -> None:
        assert await uow.insert_once(once, {"_id": "new"}, [entry("made")])
        assert await once.get("old") is not None
        assert await collection.get("aggregate") is not None

    await in_batch(cache, wire, work())
    assert wire.sent == ["made"]
    assert await once.collection.count_documents({}) == 2
    assert cache.get(("things", "aggregate"))[0]
    assert not cache.get(("once", "new"))[0] and not cache.get(("once", "old"))[0]
    Counting.reads = 0
    await in_batch(cache, wire, once.get("old"))
    assert Counting.reads == 1


async def test_a_document_is_read_once_and_kept_between_batches(collection: Counting) -> None:
    await collection.collection.insert_one({"_id": "kept", "revision": 1, "n": 0})
    cache, wire = StateCache(), Wire()
    Counting.reads = 0

    async def bump() -> None:
        stored = await collection.get("kept")
        assert stored is not None
        assert await collection.replace(
            {**stored, "n": stored["n"] + 1, "revision": stored["revision"] + 1},
            revision=stored["revision"],
        )

    for _ in range(3):
        await in_batch(cache, wire, bump())
    assert Counting.reads == 1
    stored = await collection.collection.find_one({"_id": "kept"})
    assert stored is not None and stored["n"] == 3 and stored["revision"] == 4


async def test_a_repeated_write_once_document_sends_what_the_stored_one_left_unpublished(
    collection: Counting,
) -> None:
    # Stored before a crash, its message never sent.
    left = {"_id": "once", "revision": 1, "v": "first", **outbox_fields([entry("old")], NOW)}
    await collection.collection.insert_one(left)
    cache, wire = StateCache(), Wire()
    uow = UnitOfWork(wire.publish_all, lambda: NOW)
    again = {"_id": "once", "v": "second"}
    await in_batch(cache, wire, uow.insert_once(collection, again, [entry("new")]))

    assert wire.sent == ["old"]
    stored = await collection.collection.find_one({"_id": "once"})
    assert stored is not None and stored["v"] == "first" and stored["outbox"] == []


async def test_a_write_behind_the_batch_is_a_conflict_not_a_lost_write(
    collection: Counting,
) -> None:
    await collection.collection.insert_one({"_id": "x", "revision": 1, "n": 0})
    cache, wire = StateCache(), Wire()
    batch = Batch(cache, wire.publish_all, asyncio.Semaphore())
    token = current.set(batch)
    try:
        stored = await collection.get("x")
        assert stored is not None
        await collection.replace({**stored, "n": 1, "revision": 2}, revision=1)
    finally:
        current.reset(token)
    dead_lettered: list[str] = []
    batch.dead_letters.append(lambda: _append(dead_lettered, "poison"))
    await collection.collection.update_one({"_id": "x"}, {"$set": {"revision": 2, "n": 99}})
    with pytest.raises(BatchWriteConflict):
        await batch.commit()
    assert dead_lettered == []  # the batch is handled again: its dead letters go out then
    stored = await collection.collection.find_one({"_id": "x"})
    assert stored is not None and stored["n"] == 99


async def test_many_processes_replacing_at_once_never_wedge_the_database(
    collection: Counting,
) -> None:
    """FerretDB 1.24 holds a PostgreSQL connection per statement of an update command
    until the command ends, from a pool of 50: twenty processes each sending commands of
    ten replacements held it all and waited on each other for ever, and every client of
    that FerretDB with them (measured with the code before: the test timed out and not
    even a ping was answered). Each write is its own command, so they only wait in turn."""
    processes, each = 20, 100
    await collection.collection.insert_many(
        [{"_id": f"d{n}", "revision": 1, "n": 0} for n in range(processes * each)]
    )
    wire = Wire()

    async def one_process(first: int) -> None:
        batch = Batch(StateCache(), wire.publish_all, asyncio.Semaphore(WRITES_AT_ONCE))
        token = current.set(batch)
        try:
            for n in range(first, first + each):
                stored = await collection.get(f"d{n}")
                assert stored is not None
                await collection.replace({**stored, "n": 1, "revision": 2}, revision=1)
        finally:
            current.reset(token)
        await batch.commit()

    await asyncio.wait_for(
        asyncio.gather(*(one_process(p * each) for p in range(processes))), timeout=60
    )
    assert await collection.collection.count_documents({"n": 1, "revision": 2}) == processes * each
    assert (await collection.collection.database.command("ping"))["ok"] == 1


async def _append(into: list[str], item: str) -> None:
    into.append(item)


async def test_a_batch_dead_letters_once_it_is_stored_after_its_messages(
    collection: Counting,
) -> None:
    cache, wire = StateCache(), Wire()
    uow = UnitOfWork(wire.publish_all, lambda: NOW)

    async def handle() -> None:
        await uow.insert_once(collection, {"_id": "d"}, [entry("stored")])
        batch = current.get()
        assert batch is not None
        batch.dead_letters.append(lambda: _append(wire.sent, "dead letter"))
        assert wire.sent == []  # held until the batch is stored

    await in_batch(cache, wire, handle())
    assert wire.sent == ["stored", "dead letter"]


async def test_a_failed_publish_leaves_the_messages_stored_for_the_next_read(
    collection: Counting,
) -> None:
    cache, wire = StateCache(), Wire()
    uow = UnitOfWork(wire.publish_all, lambda: NOW)
    wire.fail = True
    batch = Batch(cache, wire.publish_all, asyncio.Semaphore())
    token = current.set(batch)
    try:
        await uow.insert_once(collection, {"_id": "p"}, [entry("kept")])
    finally:
        current.reset(token)
    with pytest.raises(ConnectionError):
        await batch.commit()
    batch.forget()
    stored = await collection.collection.find_one({"_id": "p"})
    assert stored is not None and [e["event_id"] for e in stored["outbox"]] == ["kept"]

    wire.fail = False

    async def load() -> None:
        found = await collection.get("p")
        assert found is not None
        await uow.flush(collection, found)

    await in_batch(cache, wire, load())
    assert wire.sent == ["kept"]
    stored = await collection.collection.find_one({"_id": "p"})
    assert stored is not None and stored["outbox"] == [] and PENDING not in stored


async def test_find_sees_the_batch_own_writes(collection: Counting) -> None:
    await collection.collection.insert_many(
        [{"_id": "a", "group": "g"}, {"_id": "b", "group": "g"}]
    )
    cache, wire = StateCache(), Wire()
    found: list[str] = []

    async def work() -> None:
        await collection.insert({"_id": "c", "group": "g"})
        await collection.update("a", {"group": "other"})
        await collection.delete("b")
        found.extend(sorted(d["_id"] for d in await collection.find("group", "g")))

    await in_batch(cache, wire, work())
    assert found == ["c"]
    stored = await collection.collection.find({"group": "g"}).to_list()
    assert [d["_id"] for d in stored] == ["c"]


async def created(collection: Counting, uow: UnitOfWork, document_id: str) -> None:
    """What a creating handler does: load its aggregate, and store it when there is none."""
    if await collection.get(document_id) is None:
        assert await collection.insert({"_id": document_id, "revision": 1, "handled": ["c"]})
        await uow.publish([entry(f"made-{document_id}")])


async def test_an_aggregate_guessed_new_is_not_read_and_is_stored_with_the_batch(
    collection: Counting,
) -> None:
    cache, wire = StateCache(), Wire()
    uow = UnitOfWork(wire.publish_all, lambda: NOW)
    Counting.reads = 0
    await in_batch(cache, wire, created(collection, uow, "new"), new_ids={"new"})
    assert Counting.reads == 0
    assert await collection.collection.find_one({"_id": "new"}) is not None
    assert wire.sent == ["made-new"]


async def test_a_wrong_guess_stores_and_sends_nothing_of_the_batch(collection: Counting) -> None:
    await collection.collection.insert_one({"_id": "there", "revision": 3, "v": "stored"})
    cache, wire = StateCache(), Wire()
    uow = UnitOfWork(wire.publish_all, lambda: NOW)

    async def work() -> None:
        await created(collection, uow, "fresh")  # right
        await created(collection, uow, "there")  # wrong: it exists
        await uow.insert_once(collection, {"_id": "once"}, [entry("once")])

    with pytest.raises(GuessedWrong, match="'there'"):
        await in_batch(cache, wire, work(), new_ids={"fresh", "there"})
    assert wire.sent == []
    stored = await collection.collection.find({}).to_list()
    assert stored == [{"_id": "there", "revision": 3, "v": "stored"}]  # "fresh" undone


async def test_a_guess_only_read_is_checked_before_anything_is_written(
    collection: Counting,
) -> None:
    await collection.collection.insert_one({"_id": "there", "revision": 1})
    cache, wire = StateCache(), Wire()
    uow = UnitOfWork(wire.publish_all, lambda: NOW)

    async def work() -> None:
        assert await collection.get("there") is None  # guessed, so not written: checked
        await uow.insert_once(collection, {"_id": "other"}, [entry("other")])

    with pytest.raises(GuessedWrong):
        await in_batch(cache, wire, work(), new_ids={"there"})
    assert wire.sent == []
    assert await collection.collection.find_one({"_id": "other"}) is None
    # Nothing of the wrong guess is kept: the next batch reads it.
    again = Batch(cache, wire.publish_all, asyncio.Semaphore())
    token = current.set(again)
    try:
        assert await collection.get("there") is not None
    finally:
        current.reset(token)


async def test_an_insert_answers_truly_for_a_document_the_batch_has_not_read(
    collection: Counting,
) -> None:
    # A Talent Cloud's claim decides with this answer: a cloud claimed before the cache
    # was dropped (a restart, a rebalance) is not new.
    await collection.collection.insert_one({"_id": "claimed", "owner": "a"})
    cache, wire = StateCache(), Wire()
    answers: list[bool] = []

    async def claim() -> None:
        answers.append(await collection.insert({"_id": "claimed", "owner": "b"}))

    await in_batch(cache, wire, claim())
    assert answers == [False]
    assert await collection.collection.find({}).to_list() == [{"_id": "claimed", "owner": "a"}]


async def test_a_new_document_written_by_another_meanwhile_leaves_nothing_of_the_batch(
    collection: Counting,
) -> None:
    clouds = Batched(collection.collection.database["clouds"], shared=True)
    cache, wire = StateCache(), Wire()
    uow = UnitOfWork(wire.publish_all, lambda: NOW)
    batch = Batch(cache, wire.publish_all, asyncio.Semaphore(), new_ids={"fresh"})
    token = current.set(batch)
    try:
        await created(collection, uow, "fresh")  # guessed new, rightly
        assert await clouds.insert({"_id": "cloud", "owner": "a"})  # read: nobody's
    finally:
        current.reset(token)
    # Another partition's offer claims the same cloud first.
    await clouds.collection.insert_one({"_id": "cloud", "owner": "b"})
    with pytest.raises(BatchWriteConflict, match="'cloud'"):
        await batch.commit()
    assert wire.sent == []
    assert await collection.collection.find({}).to_list() == []
    assert await clouds.collection.find({}).to_list() == [{"_id": "cloud", "owner": "b"}]


async def test_many_new_documents_go_in_several_commands_and_each_one_there_is_named(
    collection: Counting,
) -> None:
    count = INSERTED_TOGETHER * 3 + 7  # four commands, the last a short one
    there = [3, INSERTED_TOGETHER + 1, INSERTED_TOGETHER * 3 + 6]  # in the first, second, last
    await collection.collection.insert_many([{"_id": f"d{n}", "old": True} for n in there])
    documents = [{"_id": f"d{n}", "n": n} for n in range(count)]

    found = await collection.insert_all(documents, asyncio.Semaphore(2))

    assert sorted(found) == there
    stored = {d["_id"]: d for d in await collection.collection.find({}).to_list()}
    assert len(stored) == count
    assert all(stored[f"d{n}"] == {"_id": f"d{n}", "old": True} for n in there)


async def test_a_new_document_of_one_writer_is_stored_with_the_rest_in_one_step(
    collection: Counting,
) -> None:
    """Read and found absent in a collection only this partition writes (a new recipient's
    inbox): nothing to check first, so it goes with the batch's other writes. Written
    behind the batch all the same (a second writer), it is a conflict, not a lost write."""
    cache, wire = StateCache(), Wire()
    uow = UnitOfWork(wire.publish_all, lambda: NOW)

    batch = Batch(cache, wire.publish_all, asyncio.Semaphore())
    after_the_checks: list[Document | None] = []
    check_first = batch._insert_new

    async def insert_new() -> None:
        await check_first()
        after_the_checks.append(await collection.collection.find_one({"_id": "inbox"}))

    batch._insert_new = insert_new  # type: ignore[method-assign]
    token = current.set(batch)
    try:
        await created(collection, uow, "inbox")  # read: not there
    finally:
        current.reset(token)
    await batch.commit()
    assert after_the_checks == [None]  # not inserted in the first step, on its own
    assert await collection.collection.find_one({"_id": "inbox"}) is not None
    assert wire.sent == ["made-inbox"]

    behind = Batch(StateCache(), wire.publish_all, asyncio.Semaphore())
    token = current.set(behind)
    try:
        await created(collection, uow, "another")
    finally:
        current.reset(token)
    await collection.collection.insert_one({"_id": "another", "revision": 1})
    with pytest.raises(BatchWriteConflict, match="read and found absent"):
        await behind.commit()


class Committed:
    """The group's committed offsets, as Records.published asks them."""

    def __init__(self, below: int) -> None:
        self.below = below
        self.asked: list[tuple[str, int, int]] = []

    async def published(self, source: Sequence[object]) -> bool:
        topic, partition, offset = source
        assert isinstance(topic, str) and isinstance(partition, int)
        assert isinstance(offset, int)
        self.asked.append((topic, partition, offset))
        return offset < self.below


async def as_record(source: tuple[str, int, int], committed: Committed, work: object) -> None:
    token = handling.set(Handling(source, committed.published))
    try:
        await work  # type: ignore[misc]
    finally:
        handling.reset(token)


async def test_an_outbox_a_batch_published_is_marked_by_its_record_not_emptied(
    collection: Counting,
) -> None:
    cache, wire = StateCache(), Wire()
    uow = UnitOfWork(wire.publish_all, lambda: NOW)
    committed = Committed(below=0)
    write = uow.insert_once(collection, {"_id": "n"}, [entry("e1")])
    await in_batch(
        cache, wire, as_record(("t", 2, 7), committed, write), published=committed.published
    )

    assert wire.sent == ["e1"]
    stored = await collection.collection.find_one({"_id": "n"})
    assert stored is not None
    # Not written a second time: the outbox stays, marked by the record whose batch sent it.
    assert [e["event_id"] for e in stored["outbox"]] == ["e1"]
    assert stored[OUTBOX_FROM] == ["t", 2, 7] and PENDING not in stored
    # The batch's own cache holds it as published.
    known, cached = cache.get(("things", "n"))
    assert known and cached is not None
    assert (cached["revision"], cached["outbox"], OUTBOX_FROM in cached) == (1, [], False)


@pytest.mark.parametrize(("below", "sent_again"), [(8, []), (7, ["e1"])])
async def test_a_marked_outbox_is_sent_again_only_if_its_record_is_not_committed(
    collection: Counting, below: int, sent_again: list[str]
) -> None:
    # Stored and published by a batch of the record at t[2]@7 (as the test above leaves it).
    marked = {"_id": "n", "revision": 1, "outbox": [entry("e1").to_document()]}
    await collection.collection.insert_one({**marked, OUTBOX_FROM: ["t", 2, 7]})
    # Read again by a process that starts afresh (a restart, a rebalance): the record is
    # redelivered, its write-once document found stored.
    cache, wire = StateCache(), Wire()
    uow = UnitOfWork(wire.publish_all, lambda: NOW)
    committed = Committed(below=below)
    again = uow.insert_once(collection, {"_id": "n"}, [entry("e1")])
    await in_batch(
        cache, wire, as_record(("t", 2, 7), committed, again), published=committed.published
    )

    assert wire.sent == sent_again
    assert committed.asked == [("t", 2, 7)]
    stored = await collection.collection.find_one({"_id": "n"})
    assert stored is not None
    # Committed: left as it was. Not committed (a crash before the commit): sent again and
    # emptied, as any outbox left behind.
    assert stored["outbox"] == ([] if sent_again else marked["outbox"])


# --- what a sweep saw (StateCache.see, Decides.seen) -----------------------------------------


async def sweep_saw(collection: Counting, cache: StateCache, document_id: str) -> None:
    found = await collection.collection.find_one({"_id": document_id})
    assert found is not None
    cache.see(collection.name, [(document_id, bson.encode(found))])


async def seen_then_changed(collection: Counting) -> tuple[StateCache, Wire]:
    """x as a sweep saw it (revision 1), then changed behind it (revision 2, n 99)."""
    await collection.collection.insert_one({"_id": "x", "revision": 1, "n": 0})
    cache, wire = StateCache(), Wire()
    await sweep_saw(collection, cache, "x")
    await collection.collection.replace_one({"_id": "x"}, {"revision": 2, "n": 99})
    Counting.reads = 0
    return cache, wire


def settled(collection: Counting, document_id: str) -> None:
    """The rule of the record that took what the sweep saw has decided."""
    batch = current.get()
    assert batch is not None
    batch.settle_seen(collection, document_id)


async def trusting(work: Awaitable[T]) -> T:
    token = trusting_seen.set(True)
    try:
        return await work
    finally:
        trusting_seen.reset(token)


async def test_a_document_a_sweep_saw_is_not_read_again_and_its_write_checks_it(
    collection: Counting,
) -> None:
    await collection.collection.insert_one({"_id": "x", "revision": 1, "n": 0})
    cache, wire = StateCache(), Wire()
    await sweep_saw(collection, cache, "x")
    Counting.reads = 0

    async def work() -> None:
        stored = await trusting(collection.get("x"))
        assert stored == {"_id": "x", "revision": 1, "n": 0}
        assert await collection.replace({**stored, "n": 1, "revision": 2}, revision=1)
        settled(collection, "x")

    await in_batch(cache, wire, work())
    assert Counting.reads == 0
    assert await collection.collection.find_one({"_id": "x"}) == {"_id": "x", "revision": 2, "n": 1}
    assert cache.get(("things", "x")) == (True, {"_id": "x", "revision": 2, "n": 1})


async def test_a_document_changed_since_the_sweep_saw_it_fails_the_batch_before_any_write(
    collection: Counting,
) -> None:
    cache, wire = await seen_then_changed(collection)
    uow = UnitOfWork(wire.publish_all, lambda: NOW)

    async def work() -> None:
        stored = await trusting(collection.get("x"))
        assert stored is not None and stored["revision"] == 1  # what the sweep saw
        await collection.replace({**stored, "n": 1, "revision": 2}, revision=1)
        settled(collection, "x")
        await uow.insert_once(collection, {"_id": "beside"}, [entry("beside")])

    with pytest.raises(BatchWriteConflict, match="changed after the sweep read them"):
        await in_batch(cache, wire, work())
    assert wire.sent == []
    assert await collection.collection.find_one({"_id": "beside"}) is None
    stored = await collection.collection.find_one({"_id": "x"})
    assert stored == {"_id": "x", "revision": 2, "n": 99}
    assert cache.get(("things", "x")) == (False, None)  # read again next time


async def test_what_a_sweep_saw_is_forgotten_when_its_record_writes_nothing(
    collection: Counting,
) -> None:
    """Out of date, it would mislead the next record of the aggregate: that one reads."""
    cache, wire = await seen_then_changed(collection)

    async def work() -> None:
        assert await trusting(collection.get("x")) == {"_id": "x", "revision": 1, "n": 0}
        settled(collection, "x")  # the rule wrote nothing
        assert await collection.get("x") == {"_id": "x", "revision": 2, "n": 99}

    await in_batch(cache, wire, work())
    assert Counting.reads == 1
    assert cache.get(("things", "x")) == (True, {"_id": "x", "revision": 2, "n": 99})


async def test_only_a_row_that_asks_takes_what_a_sweep_saw(collection: Counting) -> None:
    cache, wire = await seen_then_changed(collection)

    async def work() -> None:
        assert await collection.get("x") == {"_id": "x", "revision": 2, "n": 99}

    await in_batch(cache, wire, work())
    assert Counting.reads == 1


async def test_a_listed_collection_reads_no_id_it_does_not_list(collection: Counting) -> None:
    """Once its ids are loaded, an id not listed is known absent and not read; one listed,
    or written since (in a batch or not), is read; once the cache is dropped (a revocation)
    none is known absent until the next load."""
    await collection.collection.insert_one({"_id": "there", "revision": 1})
    cache, wire = StateCache(), Wire()
    listing = cache.listing(collection.collection)
    listed = Counting(collection.collection, listing=listing)

    async def reads_of(*ids: str, present: bool) -> int:
        Counting.reads = 0

        async def work() -> None:
            for document_id in ids:
                assert (await listed.get(document_id) is not None) is present, document_id

        await in_batch(StateCache(), wire, work())
        return Counting.reads

    assert await reads_of("nobody", present=False) == 1  # not loaded yet
    await listing.load()
    assert listing.complete and listing.ids == {"there"}
    assert await reads_of("another", "a-third", present=False) == 0
    unkept = StateCache()
    await in_batch(unkept, wire, listed.get("a-fourth"))
    assert len(unkept) == 0  # known absent, and not kept: the listing answers again
    assert await reads_of("there", present=True) == 1
    await in_batch(cache, wire, listed.insert({"_id": "new", "revision": 1}))
    assert await listed.insert({"_id": "alone", "revision": 1})  # no batch: one at a time
    assert await reads_of("new", "alone", present=True) == 2
    cache.clear()
    assert not listing.complete
    assert await reads_of("yet-another", present=False) == 1


async def test_a_listing_of_more_ids_than_it_keeps_is_not_kept(collection: Counting) -> None:
    await collection.collection.insert_many([{"_id": "a"}, {"_id": "b"}, {"_id": "c"}])
    listing = Listing(collection.collection, at_most=2)
    await listing.load()
    assert not listing.complete and not listing.ids
    assert not listing.absent("d")


async def test_a_release_in_a_batch_that_fails_leaves_its_records_parked_and_held(
    collection: Counting,
) -> None:
    """Found by the three-instance fault (faults/cluster.py): records released in a batch
    that then had to be handled again, reading first, were never released again."""
    parking = Parking(Batched(collection.collection.database["parked"]), lambda: NOW)
    await parking.ensure_indexes()  # as the services declare them (test_zz_query_plans.py)
    await parking.park("offer-1", RecordOrigin("t", 0, 7, b"offer-1"), b"{}", wait=None)

    async def release() -> None:
        for parked in await parking.waiting("offer-1"):
            await parking.remove(parked)
        parking.forget("offer-1")

    batch = Batch(StateCache(), Wire().publish_all, asyncio.Semaphore())
    token = current.set(batch)
    try:
        await release()
    finally:
        current.reset(token)
    batch.forget()  # it failed: nothing of it stored
    assert parking.holds("offer-1")
    assert [p.origin.offset for p in await parking.waiting("offer-1")] == [7]

    await in_batch(StateCache(), Wire(), release())
    assert not parking.holds("offer-1")
    assert await parking.waiting("offer-1") == []
