"""Handlers that only decide. A row made by `decides` names a message type, the aggregate
it is for (the one its key names, read from `state`'s repository) and a rule: a plain
function from (the handlers, the aggregate or None, the message, the clock's now) to an
`Outcome`. The rule cannot await, so it does no I/O; the runtime does all of it:

    stored = load the aggregate (publishing what an earlier write left unpublished)
    the message's id among stored.handled?  -> done before: nothing more
    outcome = rule(handlers, stored.value, message, now)
    Changed   -> commit the new state with its messages, the id remembered
    Unchanged -> the aggregate not written (said in the log); what it asks of others
                 published, and what it writes once beside it stored
    Waits     -> the aggregate is not there yet: the message waits for it (parked)
    Rejection -> the command refused (services.runtime.refusals)

Idempotency is the runtime's: an aggregate remembers the ids of the messages that changed
it (services.runtime.uow, MAX_HANDLED), so a redelivered message has no second effect
whatever its rule; a document written once beside it (`WriteOnce`) has an id derived from
its source, so a repeat finds it stored. Where the producer names the effect itself (a
chat message's `message_id`, which a new command may repeat), the row's `once_id` derives
that document's id from the message, and the runtime looks it up before asking the rule
(or, where the rule's acceptance writes nothing else, only before a refusal: `once_first`).
A rule that numbers a stream (an inbox's notifications) is given its record's place in
its partition (`Placed`): the record's offset, which every later record of the aggregate
passes, so a number needs no counter written with each item.
`Acts` is the row of a message that keeps no aggregate: an event that only asks others
for something (what it asks has derived ids, so asking again is harmless, and nothing is
stored), or a command that sets fields on documents written before (`Sets`).

In a batch the load and the commit go through the batch (services.runtime.batch), so a
rule is the same code whether its record came alone or with a thousand others.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

from contracts import Command
from services.rules import Rejection

from .batch import trusting_seen
from .documents import Document, Documents
from .outbox import MessageLike, OutboxEntry
from .refusals import Refusals
from .uow import NotYetKnown, Repository, UnitOfWork

log = logging.getLogger(__name__)

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class WriteOnce:
    """A document written once beside the aggregate (a notification beside its inbox), with
    the messages it sends in its own outbox. Its `_id` derives from what made it, so a
    repeat finds it stored and only publishes what it left unpublished."""

    document: Document
    messages: Sequence[MessageLike | OutboxEntry] = ()


@dataclass(frozen=True, slots=True)
class Changed(Generic[S]):
    """The aggregate's new state and the messages it sends, stored in one write, then the
    write-once documents beside it (`once`, into the row's `once` collection). `said`: what
    happened, for the log (nothing is logged when it is empty)."""

    state: S
    messages: Sequence[MessageLike | OutboxEntry] = ()
    said: str = ""
    once: Sequence[WriteOnce] = ()


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The aggregate is not written: the message teaches it nothing (why, for the log).
    `messages`: what it asks of others all the same, published, not stored, as the same
    message asks for them again under the same ids. `once`: write-once documents stored
    all the same, as in `Changed` (a notification, numbered without its inbox's write)."""

    why: str
    messages: Sequence[OutboxEntry] = ()
    once: Sequence[WriteOnce] = ()


@dataclass(frozen=True, slots=True)
class Waits:
    """The aggregate the message needs is not there yet: the message waits for it
    (services.runtime.parking) and is refused with `code` and `reason` if it never comes."""

    code: str
    reason: str


Outcome: TypeAlias = Changed[S] | Unchanged | Waits | Rejection

# The place of the record being handled in its partition (its offset + 1), set by the
# runtime around each record's handler (services.runtime.service.Records).
record_place: ContextVar[int | None] = ContextVar("record_place", default=None)


def id_of(message: Any) -> str:
    """A message's own id: a command's command_id, an event's event_id."""
    return str(getattr(message, "command_id", None) or getattr(message, "event_id", "?"))


def _type(message: Any) -> str:
    return str(getattr(message, "type", type(message).__name__))


class Deciding(Protocol):
    """What the runtime needs of a service's handlers object."""

    @property
    def uow(self) -> UnitOfWork: ...

    @property
    def refusals(self) -> Refusals: ...


H = TypeVar("H", bound=Deciding)


class Keyed(Protocol):
    """A message: the record's key names its aggregate."""

    @property
    def key(self) -> str: ...


M = TypeVar("M", bound=Keyed)


@dataclass(frozen=True, slots=True)
class Placed(Generic[M]):
    """A message and its record's place in its partition: its offset + 1, so 1 is the
    first record and 0 stands for none. Every aggregate's records share its partition, and
    a later record of it has a larger place, so a rule numbers a stream of the aggregate
    by it (a redelivered record keeps its place, and so its number)."""

    message: M
    place: int

    @property
    def key(self) -> str:
        return self.message.key

    def number(self, counted: int) -> int:
        """The number of the item the message makes in its aggregate's stream (which only
        has to increase): its place, which every later record of the aggregate passes, so
        nothing has to be written to count; but above `counted`, the counter that numbered
        the aggregate's items before they were numbered by place (the rule moves it on while
        it is ahead, that is while the number is not the place)."""
        return max(self.place, counted + 1)


def placed(message: M) -> Placed[M]:
    """The message with the place of the record the runtime is handling."""
    place = record_place.get()
    assert place is not None, f"{_type(message)} is decided outside a record: it has no place"
    return Placed(message, place)


@dataclass(frozen=True, slots=True)
class Decides(Generic[H, S, M]):
    """One message type's rule and the aggregate it decides on.

    `confirm`: a check of the new state against another aggregate that only the database
    can arbitrate (a Talent Cloud's first claim); it runs again for a message handled
    before, in case a crash came between the two writes, so it must be safe to repeat.

    `once`: the collection of the rule's write-once documents (and of what `once_id` names).

    `remembers`: what the aggregate remembers of a message that changed it, so that a
    repeat is skipped: its own id by default; the producer's id for the effect where a new
    command may repeat it (a time entry's entry_id); or None, where what the message makes
    is a write-once document whose own id already tells a repeat (a Notify, thousands of
    which pass through one inbox: remembered, their ids would make the inbox a large
    document rewritten on every notification). A repeat is then decided again, and its
    write-once document found stored.

    `once_id`: the id of the document the message makes, derived from the producer's own
    id for it (a chat message's message_id, a time entry's). Found stored, the message is
    done whatever its command id: what the document left unpublished goes out, and the
    rule is not asked (a thread closed since must not refuse a message it holds). The
    aggregate is written before the document, so a crash between the two leaves a number
    used and no message (a gap), which the repeat then writes; never a message twice. A
    document made by a message the aggregate sends itself (a time entry, stored by the
    RecordTimeEntry its contract's write sends) is found only once that write is stored.

    `key`: the aggregate's id where it is not the record's key (a Talent Cloud membership,
    one of many on its cloud's partition, so still written by one writer).

    `seen`: the message is a sweep's (an ExpireOffer), and may take the aggregate as the
    sweep of this process read it instead of reading it again (StateCache.see): the batch
    replaces it first, at the revision the sweep saw, so a change since fails the batch
    before anything is stored; and if the rule writes nothing, what the sweep saw is
    forgotten, so that no later record decides on it. Only for a rule that replaces the
    aggregate or leaves it be (never deletes it), and whose "nothing to do" on a document
    out of date is harmless: the sweep asks again while the work is due.

    `once_first`: whether `once_id`'s document is looked up before the rule is asked (True),
    or only when the rule refuses (False), for a rule whose acceptance writes nothing but
    that document (a chat message numbered by its place): a repeat accepted again is found
    by the document's insert, so a message costs no read."""

    rule: Callable[[H, S | None, M, datetime], Outcome[S]]
    state: Callable[[H], Repository[S]]
    confirm: Callable[[H, S, datetime], Awaitable[Rejection | None]] | None = None
    once: Callable[[H], Documents] | None = None
    remembers: Callable[[M], str] | None = id_of
    once_id: Callable[[M], str] | None = None
    key: Callable[[M], str] | None = None
    seen: bool = False
    once_first: bool = True

    async def __call__(self, handlers: H, message: M) -> None:
        key = message.key if self.key is None else self.key(message)
        try:
            await self._decide(handlers, message, key)
        finally:
            if self.seen:
                handlers.uow.settle_seen(self.state(handlers).documents, key)

    async def _decide(self, handlers: H, message: M, key: str) -> None:
        uow = handlers.uow
        message_id = id_of(message)
        remembered = None if self.remembers is None else self.remembers(message)
        trusting = trusting_seen.set(self.seen)  # the aggregate's read only
        try:
            stored = await uow.load(self.state(handlers), key)
        finally:
            trusting_seen.reset(trusting)
        # Written after its aggregate: without one there is nothing to look up.
        look_up = self.once_id is not None and stored is not None
        if look_up and self.once_first and await self._made_before(handlers, message, key):
            return
        now = uow.clock()
        if remembered is not None and stored is not None and remembered in stored.handled:
            log.info("%s %s for %s handled before; not repeated", _type(message), message_id, key)
            if self.confirm is not None:
                await self.confirm(handlers, stored.value, now)
            return
        outcome = self.rule(handlers, None if stored is None else stored.value, message, now)
        if isinstance(outcome, Changed) and self.confirm is not None:
            outcome = await self.confirm(handlers, outcome.state, now) or outcome
        if (
            isinstance(outcome, Rejection)
            and look_up
            and not self.once_first
            and await self._made_before(handlers, message, key)
        ):
            return  # a repeat of what it made, refused only because the aggregate moved on
        if not isinstance(outcome, Changed):
            await _settle(handlers, message, outcome, key=key)
            if isinstance(outcome, Unchanged):
                await self._write_once(handlers, message, outcome.once)
            return
        # A repeat skipped as handled would never write them, were a crash to come between
        # the two writes: what a remembered message makes beside its aggregate goes through
        # a message the aggregate sends itself (a time entry: RecordTimeEntry).
        assert not outcome.once or remembered is None, (
            f"{_type(message)}'s row remembers it, so its rule may not write beside the aggregate"
        )
        await uow.commit(
            self.state(handlers),
            outcome.state,
            expected=stored,
            messages=outcome.messages,
            handled=[] if remembered is None else [remembered],
        )
        await self._write_once(handlers, message, outcome.once)
        if outcome.said:
            log.info("%s", outcome.said)

    async def _made_before(self, handlers: H, message: M, key: str) -> bool:
        """Whether the document the message makes (`once_id`) is stored: then it is done
        (what the document left unpublished goes out)."""
        assert self.once is not None and self.once_id is not None, (
            f"{_type(message)}'s row names no `once` collection"
        )
        made = self.once_id(message)
        if await handlers.uow.load_once(self.once(handlers), made) is None:
            return False
        log.info(
            "%s %s for %s: what it makes is stored already (%s); not repeated",
            _type(message),
            id_of(message),
            key,
            made,
        )
        return True

    async def _write_once(self, handlers: H, message: M, once: Sequence[WriteOnce]) -> None:
        if not once:
            return
        assert self.once is not None, f"{_type(message)}'s row names no `once` collection"
        for written in once:
            await handlers.uow.insert_once(self.once(handlers), written.document, written.messages)


@dataclass(frozen=True, slots=True)
class Sets:
    """Fields set on documents written once before (notifications marked read, their
    emails closed), on each of `ids` that still matches `where`: safe to repeat, as a
    document set before no longer matches. `said`: what happened, for the log, which adds
    how many changed."""

    ids: Sequence[str]
    fields: Document
    where: Document
    said: str


Effect: TypeAlias = Unchanged | Sets | Rejection


@dataclass(frozen=True, slots=True)
class Acts(Generic[H, M]):
    """The row of a message that keeps no aggregate of its own: an event that only asks
    others for something (`Unchanged` with the messages, published: the same event asks
    for the same under the same derived ids, so nothing is stored), or a command that sets
    fields on documents written before (`Sets`, on the row's `on` collection)."""

    rule: Callable[[H, M, datetime], Effect]
    on: Callable[[H], Documents] | None = None

    async def __call__(self, handlers: H, message: M) -> None:
        uow = handlers.uow
        outcome = self.rule(handlers, message, uow.clock())
        if isinstance(outcome, Sets):
            assert self.on is not None, f"{_type(message)}'s row names no collection to set on"
            changed = await uow.set_each(
                self.on(handlers), outcome.ids, outcome.fields, outcome.where
            )
            log.info("%s: %d of %d changed", outcome.said, changed, len(outcome.ids))
        else:
            await _settle(handlers, message, outcome, key=message.key)


async def _settle(
    handlers: Deciding, message: Any, outcome: Unchanged | Waits | Rejection, *, key: str
) -> None:
    """What a rule decided that writes no aggregate: a refusal, a wait, or nothing (and
    what it asks of others)."""
    if isinstance(outcome, Rejection):
        assert isinstance(message, Command), f"{_type(message)} is not a command: not refused"
        await handlers.refusals.refuse(message, outcome)
    elif isinstance(outcome, Waits):
        # Parked under the record's key, which is what releases it (not a row's own `key`).
        raise NotYetKnown(message.key, outcome.code, outcome.reason)
    else:
        # Asking others is routine; a message that does nothing at all is worth a line.
        level = logging.DEBUG if outcome.messages else logging.INFO
        log.log(level, "%s %s for %s: %s", _type(message), id_of(message), key, outcome.why)
        if outcome.messages:
            await handlers.uow.publish(outcome.messages)
