"""The runtime of handlers that only decide (services.runtime.decide), on in-memory
documents: it loads, keeps idempotency, and commits, refuses or leaves alone what a rule
returns. The aggregate is a counter of withdrawals; any command type would do."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts import RejectionCode, WithdrawOffer
from services.rules import Rejection
from services.runtime.decide import (
    Acts,
    Changed,
    Decides,
    Outcome,
    Sets,
    Unchanged,
    Waits,
    WriteOnce,
)
from services.runtime.documents import MemoryDocuments
from services.runtime.outbox import OutboxEntry
from services.runtime.refusals import Refusals
from services.runtime.service import decides
from services.runtime.uow import NotYetKnown, Repository, UnitOfWork

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Tally:
    offer_id: str
    count: int


@dataclass
class Counting:
    """A service's handlers object: its rule, and what the runtime needs of it."""

    published: list[OutboxEntry] = field(default_factory=list)
    seen: list[Tally | None] = field(default_factory=list)
    claims: list[Tally] = field(default_factory=list)
    refuse_in_confirm: bool = False

    def __post_init__(self) -> None:
        self.notes = MemoryDocuments("notes")
        self.uow = UnitOfWork(self._publish, lambda: NOW)
        self.refusals = Refusals(MemoryDocuments("rejections"), self.uow)
        self.tallies = Repository[Tally](
            MemoryDocuments("tallies"),
            to_document=lambda t: {"offer_id": t.offer_id, "count": t.count},
            from_document=lambda d: Tally(d["offer_id"], d["count"]),
            id_of=lambda t: t.offer_id,
        )

    async def _publish(self, entries: Sequence[OutboxEntry]) -> None:
        self.published.extend(entries)

    def count(self, tally: Tally | None, command: WithdrawOffer, now: datetime) -> Outcome[Tally]:
        self.seen.append(tally)
        if command.actor_id == "stranger":
            return Rejection(RejectionCode.NOT_AUTHORIZED, "a stranger may not count")
        if command.reason == "nothing":
            return Unchanged("nothing to count")
        counted = Tally(command.offer_id, 1 if tally is None else tally.count + 1)
        return Changed(counted, said=f"counted {counted.count}")

    def note(self, tally: Tally | None, command: WithdrawOffer, now: datetime) -> Outcome[Tally]:
        """Counts, and writes a note once per command (its id derives from the command)."""
        counted = Tally(command.offer_id, 1 if tally is None else tally.count + 1)
        noted = OutboxEntry("notes", command.offer_id, "Noted", f"noted-{command.command_id}", "{}")
        note = WriteOnce({"_id": f"note-{command.command_id}"}, [noted])
        return Changed(counted, once=[note])

    def post(self, tally: Tally | None, command: WithdrawOffer, now: datetime) -> Outcome[Tally]:
        """As a chat message: the producer names the note (here by `reason`), the tally
        numbers it, and a closed tally (count 9) refuses anything new."""
        if tally is None:
            return Waits(RejectionCode.UNKNOWN_OFFER, "no tally yet")
        if tally.count >= 9:
            return Rejection(RejectionCode.THREAD_CLOSED, "the tally is closed")
        counted = Tally(command.offer_id, tally.count + 1)
        posted = OutboxEntry("notes", command.offer_id, "Posted", f"posted-{command.reason}", "{}")
        return Changed(counted, once=[WriteOnce({"_id": note_of(command)}, [posted])])

    def ask(self, tally: Tally | None, command: WithdrawOffer, now: datetime) -> Outcome[Tally]:
        asked = OutboxEntry("asks", command.offer_id, "Asked", f"asked-{command.command_id}", "{}")
        return Unchanged("only asks", [asked])

    async def confirm(self, tally: Tally, now: datetime) -> Rejection | None:
        self.claims.append(tally)
        if self.refuse_in_confirm:
            return Rejection(RejectionCode.NOT_AUTHORIZED, "another aggregate said no")
        return None


def note_of(command: WithdrawOffer) -> str:
    return f"note-{command.reason}"


def withdraw(actor: str = "client-1", **fields: Any) -> WithdrawOffer:
    return WithdrawOffer(command_id=str(uuid.uuid4()), actor_id=actor, offer_id="offer-1", **fields)


def tallies(handlers: Counting) -> Repository[Tally]:
    return handlers.tallies


def row(*, confirm: bool = False) -> Decides[Counting, Tally, WithdrawOffer]:
    return Decides(Counting.count, tallies, Counting.confirm if confirm else None)


async def stored(handlers: Counting) -> dict[str, Any] | None:
    return await handlers.tallies.documents.get("offer-1")


async def test_a_change_is_stored_with_the_message_id_remembered() -> None:
    handlers, decide = Counting(), row()
    first, second = withdraw(), withdraw()
    await decide(handlers, first)
    await decide(handlers, second)
    document = await stored(handlers)
    assert document is not None and document["count"] == 2
    assert document["handled"] == [first.command_id, second.command_id]
    assert handlers.seen == [None, Tally("offer-1", 1)]  # the rule sees what was stored


async def test_a_message_handled_before_is_not_decided_again() -> None:
    handlers, decide = Counting(), row()
    command = withdraw()
    for _ in range(3):
        await decide(handlers, command)
    document = await stored(handlers)
    assert document is not None and document["count"] == 1 and document["revision"] == 1
    assert len(handlers.seen) == 1


async def test_unchanged_writes_nothing_and_a_rejection_is_refused_once() -> None:
    handlers, decide = Counting(), row()
    await decide(handlers, withdraw(reason="nothing"))
    assert await stored(handlers) is None
    refused = withdraw(actor="stranger")
    await decide(handlers, refused)
    await decide(handlers, refused)  # redelivered: its rejection is the one stored before
    assert await stored(handlers) is None
    [rejected] = [e for e in handlers.published if e.type == "CommandRejected"]
    assert refused.command_id in rejected.payload


async def test_confirm_can_refuse_the_change_and_runs_again_for_a_repeat() -> None:
    handlers, decide = Counting(refuse_in_confirm=True), row(confirm=True)
    await decide(handlers, withdraw())
    assert await stored(handlers) is None  # refused by the other aggregate: nothing stored
    assert [e.type for e in handlers.published] == ["CommandRejected"]

    handlers.refuse_in_confirm = False
    command = withdraw()
    await decide(handlers, command)
    await decide(handlers, command)  # redelivered: confirmed again, not decided again
    assert handlers.claims[1:] == [Tally("offer-1", 1), Tally("offer-1", 1)]
    document = await stored(handlers)
    assert document is not None and document["count"] == 1


def notes(handlers: Counting) -> MemoryDocuments:
    return handlers.notes


async def test_a_row_that_does_not_remember_decides_a_repeat_again_and_writes_once() -> None:
    """As a Notify: the aggregate keeps no id, the write-once document tells the repeat."""
    handlers = Counting()
    decide = Decides(Counting.note, tallies, once=notes, remembers=None)
    command = withdraw()
    await decide(handlers, command)
    await decide(handlers, command)
    document = await stored(handlers)
    assert document is not None and document["count"] == 2  # decided twice: a gap
    assert document["handled"] == []
    assert await handlers.notes.get(f"note-{command.command_id}") is not None
    assert [e.message_id for e in handlers.published] == [f"noted-{command.command_id}"]


async def test_a_row_that_remembers_may_not_write_beside_its_aggregate() -> None:
    """A repeat it skips as handled would not write the document again, were a crash to
    come between the two writes: the runtime refuses the row before storing anything."""
    handlers = Counting()
    decide = Decides(Counting.note, tallies, once=notes)
    with pytest.raises(AssertionError, match="may not write beside the aggregate"):
        await decide(handlers, withdraw())
    assert await stored(handlers) is None


def posting() -> Decides[Counting, Tally, WithdrawOffer]:
    return Decides(Counting.post, tallies, once=notes, remembers=None, once_id=note_of)


async def test_a_message_whose_document_is_stored_is_done_whatever_its_command_id() -> None:
    """As a chat message repeated by a new command: found by the producer's id, it is not
    numbered again, and not refused by a tally closed since."""
    handlers, decide = Counting(), posting()
    await handlers.uow.commit(handlers.tallies, Tally("offer-1", 0), expected=None)
    await decide(handlers, withdraw(reason="m-1"))
    await decide(handlers, withdraw(reason="m-1"))  # a new command, the same message
    document = await stored(handlers)
    assert document is not None and document["count"] == 1 and document["handled"] == []
    await handlers.uow.commit(  # closed meanwhile
        handlers.tallies,
        Tally("offer-1", 9),
        expected=await handlers.tallies.get("offer-1"),
    )
    await decide(handlers, withdraw(reason="m-1"))
    assert [e.message_id for e in handlers.published] == ["posted-m-1"]  # no rejection


async def test_a_message_whose_document_was_not_written_is_decided_again() -> None:
    """A crash after the tally's write, before the note's: the repeat takes a new number
    (a gap) and writes the note; nothing is posted twice."""
    handlers, decide = Counting(), posting()
    await handlers.uow.commit(handlers.tallies, Tally("offer-1", 4), expected=None)
    await decide(handlers, withdraw(reason="m-1"))
    await handlers.notes.delete(note_of(withdraw(reason="m-1")))  # as if never written
    handlers.published.clear()
    await decide(handlers, withdraw(reason="m-1"))
    document = await stored(handlers)
    assert document is not None and document["count"] == 6
    assert [e.message_id for e in handlers.published] == ["posted-m-1"]


async def test_waits_parks_the_message_and_writes_nothing() -> None:
    handlers, decide = Counting(), posting()
    with pytest.raises(NotYetKnown) as waiting:
        await decide(handlers, withdraw(reason="m-1"))
    assert waiting.value.key == "offer-1" and waiting.value.code == RejectionCode.UNKNOWN_OFFER
    assert await stored(handlers) is None and handlers.published == []


async def test_a_row_keyed_otherwise_parks_the_message_under_its_record_key() -> None:
    """Parking is released by the record's key (an aggregate's arrival on the partition),
    so a row whose aggregate has an id of its own still waits under the record's key."""
    handlers = Counting()
    decide = Decides(Counting.post, tallies, once=notes, remembers=None, key=note_of)
    with pytest.raises(NotYetKnown) as waiting:
        await decide(handlers, withdraw(reason="m-1"))
    assert waiting.value.key == "offer-1"


async def test_unchanged_publishes_what_it_asks_and_stores_nothing() -> None:
    handlers = Counting()
    command = withdraw()
    await Decides(Counting.ask, tallies)(handlers, command)
    assert await stored(handlers) is None
    assert [e.message_id for e in handlers.published] == [f"asked-{command.command_id}"]


async def test_an_acting_row_publishes_what_it_asks_and_sets_only_what_still_matches() -> None:
    handlers = Counting()
    command = withdraw()
    asked = OutboxEntry("asks", command.offer_id, "Asked", command.command_id, "{}")
    asking: Acts[Counting, WithdrawOffer] = Acts(lambda h, c, now: Unchanged("asks", [asked]))
    await asking(handlers, command)
    assert handlers.published == [asked]

    for note in ("n-1", "n-2"):
        await handlers.notes.insert({"_id": note, "read": False})
    marking: Acts[Counting, WithdrawOffer] = Acts(
        lambda h, c, now: Sets(["n-1", "n-1", "n-3"], {"read": True}, {"read": False}, "read"),
        on=notes,
    )
    await marking(handlers, command)
    await marking(handlers, command)  # repeated: the note set before no longer matches
    assert [await handlers.notes.get(n) for n in ("n-1", "n-2")] == [
        {"_id": "n-1", "read": True},
        {"_id": "n-2", "read": False},
    ]


async def test_an_acting_row_refuses_what_its_rule_refuses() -> None:
    handlers = Counting()
    refusing: Acts[Counting, WithdrawOffer] = Acts(
        lambda h, c, now: Rejection(RejectionCode.NOT_AUTHORIZED, "not yours")
    )
    await refusing(handlers, withdraw())
    assert [e.type for e in handlers.published] == ["CommandRejected"]


def test_a_row_with_its_own_key_cannot_be_guessed_new() -> None:
    """The batch guesses new what the record's key names; a row keyed otherwise would have
    its neighbour guessed instead, so the table refuses it when it is declared."""
    with pytest.raises(TypeError, match="cannot be `creates`"):
        decides(WithdrawOffer, Counting.count, state=tallies, creates=True, key=note_of)
