"""A service declared once, as a table of topic -> message -> handler, and the one way its
records are handled.

The table is the source of the subscribers, the topics created at start-up, the AsyncAPI
document, processes.CONSUMES and the tests' topic lists.

One writer per aggregate, by construction: every record that changes an aggregate is keyed
by the aggregate's id, and all topics a service consumes have the same number of
partitions (checked at start-up). The service's consumers subscribe to all of them with
Kafka's range assignor, which gives partition N of every topic to the same consumer. So
each aggregate's records, whichever topic they come on, meet in one consumer, which
handles them in order, a fetched batch at a time: the batch's aggregates side by side,
each one's records one after another, and all their I/O done together at the end of the
batch (services.runtime.batch). Work that does not come from a record (the expiry and reminder
sweeps, the deadline of a parked command) is sent as an internal command to the service's
own internal topic, keyed by the aggregate, and so takes the same path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import partial
from typing import Any, Final, Protocol, TypeVar

from aiokafka import ConsumerRebalanceListener, TopicPartition
from pydantic import TypeAdapter, ValidationError

from contracts import Command, InvalidCommand, OfferExtended, parse_command, topics
from contracts import UnreadableCommand as Unreadable
from contracts.internal import INTERNAL_ADAPTERS, ReleaseParked
from services.rules import OFFER_EVENTS, OfferEvent, Rejection, derived_id

from . import metrics as outcomes
from .batch import (
    WRITES_AT_ONCE,
    Batch,
    GuessedWrong,
    Handling,
    PublishAll,
    StateCache,
    current,
    handling,
)
from .consumer import DeadLetter, dead_letter_record, failure_of, is_outage, pause_for_outage
from .decide import (
    Acts,
    Decides,
    Deciding,
    Effect,
    Keyed,
    Outcome,
    Placed,
    id_of,
    placed,
    record_place,
)
from .documents import Documents
from .logs import message_context
from .metrics import ServiceMetrics
from .parking import Parked, Parking
from .refusals import Refusals
from .uow import NotYetKnown, Repository
from .wire import RecordOrigin

log = logging.getLogger(__name__)


class Kind(Enum):
    COMMAND = "command"  # from outside producers: validated, refused or dead-lettered
    EVENT = "event"  # another service's facts: tolerant, skipped when unreadable
    INTERNAL = "internal"  # the service's own commands to itself


H = TypeVar("H")
DH = TypeVar("DH", bound=Deciding)
M = TypeVar("M", bound=Keyed)
S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class TypeHandler:
    """One message type and the handler that decides it (made by `handles`)."""

    type: type
    handle: Callable[[Any, Any], Awaitable[None]]
    creates: bool = False


def handles(
    type_: type[M], handle: Callable[[H, M], Awaitable[None]], *, creates: bool = False
) -> TypeHandler:
    """A row's handler of one message type; mypy checks that the handler takes the type.
    (A function, not the class: its result names no type variable, so a table's expected
    type cannot turn them into Any; and one type per call, as mypy would join several into
    their base class.)

    `creates`: the message brings its aggregate (the one its key names) into existence, so
    in a batch the aggregate is guessed new instead of read (services.runtime.batch checks
    the guess before anything is written). A creating command is then not looked up among
    the refused ones either: whether it is refused must depend only on the command and on
    its aggregate being new (and on facts that never change once set), so a second refusal
    is the first one again, found by its derived id, and an acceptance after a refusal
    cannot happen."""
    return TypeHandler(type_, handle, creates)


def decides(
    type_: type[M],
    rule: Callable[[DH, S | None, M, datetime], Outcome[S]],
    *,
    state: Callable[[DH], Repository[S]],
    creates: bool = False,
    confirm: Callable[[DH, S, datetime], Awaitable[Rejection | None]] | None = None,
    once: Callable[[DH], Documents] | None = None,
    remembers: Callable[[M], str] | None = id_of,
    once_id: Callable[[M], str] | None = None,
    key: Callable[[M], str] | None = None,
    seen: bool = False,
) -> TypeHandler:
    """A row whose handler only decides: `rule` is a plain function, and the runtime loads
    the aggregate the message's key names from `state`, keeps idempotency and commits or
    refuses what the rule returns (services.runtime.decide). mypy checks that the rule takes
    the type and the repository's aggregate. `creates`: as in `handles`; `confirm`, `once`,
    `remembers`, `once_id`, `key` and `seen`: as in `Decides`."""
    if creates and key is not None:
        # The batch guesses new the aggregate the record's key names: with a key of its
        # own, the row would guess its neighbour (the contract of a time entry) instead.
        raise TypeError(f"{type_.__name__}: a row with its own `key` cannot be `creates`")
    decide = Decides(rule, state, confirm, once, remembers, once_id, key, seen)
    return TypeHandler(type_, decide, creates)


def numbers(
    type_: type[M],
    rule: Callable[[DH, S | None, Placed[M], datetime], Outcome[S]],
    *,
    state: Callable[[DH], Repository[S]],
    once: Callable[[DH], Documents],
    once_id: Callable[[M], str] | None = None,
) -> TypeHandler:
    """A row whose rule numbers a stream of its aggregate by the record's place in its
    partition (`Placed`), writing each item once into `once` (an inbox's notifications, a
    thread's messages): the aggregate need not be written to count them. Nothing is
    remembered: a repeat finds its item stored by the item's derived id, at its insert; with
    `once_id` (the producer names the item), before a refusal too (`Decides.once_first`)."""

    def rule_with_place(handlers: DH, stored: S | None, message: M, now: datetime) -> Outcome[S]:
        return rule(handlers, stored, placed(message), now)

    decide = Decides(
        rule_with_place, state, once=once, remembers=None, once_id=once_id, once_first=False
    )
    return TypeHandler(type_, decide)


def acts(
    type_: type[M],
    rule: Callable[[DH, M, datetime], Effect],
    *,
    on: Callable[[DH], Documents] | None = None,
) -> TypeHandler:
    """A row whose message keeps no aggregate: `rule` says what it asks of others, or which
    fields it sets on the documents of `on` (services.runtime.decide.Acts)."""
    return TypeHandler(type_, Acts(rule, on))


@dataclass(frozen=True, slots=True)
class On:
    """One row of a service's table: records of `topic` are read with `adapter`, and each
    message goes to the handler of its type, the one place a type is dispatched."""

    topic: str
    adapter: TypeAdapter[Any]
    kind: Kind
    handles: tuple[TypeHandler, ...] = ()
    # The aggregate a message may bring into existence: what is parked for it is released
    # right after the message is handled.
    releases: Callable[[Any], str] | None = None
    by_type: dict[type, Callable[[Any, Any], Awaitable[None]]] = field(init=False)
    creates: frozenset[type] = field(init=False)

    def __post_init__(self) -> None:
        by_type = {row.type: row.handle for row in self.handles}
        carried = set(types_of(self.adapter)) - {ReleaseParked}  # Records handles that
        if set(by_type) != carried or len(by_type) != len(self.handles):
            names = sorted(t.__name__ for t in carried ^ set(by_type))
            raise TypeError(
                f"the row of {self.topic} must name one handler for each type the topic "
                f"carries, no more: {', '.join(names) or 'a type named twice'}"
            )
        object.__setattr__(self, "by_type", by_type)
        object.__setattr__(self, "creates", frozenset(r.type for r in self.handles if r.creates))

    async def handle(self, handlers: Any, message: Any) -> None:
        await self.by_type[type(message)](handlers, message)


def each_offer_event(
    rule: Callable[[DH, S | None, OfferEvent, datetime], Outcome[S]],
    *,
    state: Callable[[DH], Repository[S]],
) -> tuple[TypeHandler, ...]:
    """The rows of offers.events for a service whose one rule decides every offer event
    (typed by the rule's own signature: OFFER_EVENTS are OfferEvent's members), on what it
    keeps of the offer. An offer's first event, OfferExtended, creates that."""
    return tuple(
        TypeHandler(event_type, Decides(rule, state), creates=event_type is OfferExtended)
        for event_type in OFFER_EVENTS
    )


def types_of(adapter: TypeAdapter[Any]) -> list[type]:
    """The message types a contract's adapter reads: its discriminated union's members."""
    schema = adapter.core_schema
    definitions: dict[str, Any] = {}
    if schema["type"] == "definitions":
        definitions = {d["ref"]: d for d in schema["definitions"]}
        schema = schema["schema"]
    choices = schema["choices"].values() if schema["type"] == "tagged-union" else [schema]
    found = []
    for choice in choices:
        if choice["type"] == "definition-ref":
            choice = definitions[choice["schema_ref"]]
        if choice["type"] != "model":
            raise TypeError(f"not a union of message types: {choice['type']} in {adapter}")
        found.append(choice["cls"])
    return found


# A record whose handling fails for another reason than an outage is tried this many times,
# this long apart (doubling), before it is dead-lettered: long enough for a passing fault,
# short enough that a poisoned record holds its partition up for a second or two only.
ATTEMPTS: Final = 3
RETRY_BACKOFF_SECONDS: Final = 0.25

# A refusal put off (the aggregate's sources are still being read) is tried again this soon.
ASK_AGAIN: Final = timedelta(seconds=1)

# Stands for the deployment's internal topic in a table: topics.internal(group id).
INTERNAL_TOPIC: Final = "<internal>"


@dataclass(frozen=True, slots=True)
class ServiceTable:
    """What a service reads (one row per topic) and writes. Its internal topic is named
    after the consumer group, so a table is completed for one deployment by `for_group`."""

    name: str
    http_port: int
    consumes: tuple[On, ...]
    publishes: tuple[str, ...]
    internal_topic: str = INTERNAL_TOPIC
    routes: dict[str, On] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "routes", {on.topic: on for on in self.consumes})

    def for_group(self, group_id: str) -> ServiceTable:
        internal = topics.internal(group_id)

        def named(topic: str) -> str:
            return internal if topic == INTERNAL_TOPIC else topic

        return ServiceTable(
            self.name,
            self.http_port,
            tuple(replace(on, topic=named(on.topic)) for on in self.consumes),
            (*self.publishes, internal),
            internal,
        )

    @property
    def consumed_topics(self) -> tuple[str, ...]:
        return tuple(on.topic for on in self.consumes)

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.consumed_topics, *self.publishes)))


def internal_on(service: str, *rows: TypeHandler, **kwargs: Any) -> On:
    """The row of the service's internal topic: its own commands, and ReleaseParked (which
    Records handles itself)."""
    return On(INTERNAL_TOPIC, INTERNAL_ADAPTERS[service], Kind.INTERNAL, rows, **kwargs)


class Records:
    """Takes each record of the service's topics to its handler, with parking, refusals,
    dead-lettering and metrics: the same for every service."""

    def __init__(
        self,
        table: ServiceTable,
        handlers: Any,
        *,
        refusals: Refusals,
        parking: Parking,
        dead_letter: DeadLetter,
        metrics: ServiceMetrics,
        max_contract_days: int,
        unknown_wait: timedelta,
        partitions: Partitions,
        publish_all: PublishAll | None = None,
        cache: StateCache | None = None,
    ) -> None:
        self.table = table
        self.handlers = handlers
        self.refusals = refusals
        self.parking = parking
        self.dead_letter = dead_letter
        self.metrics = metrics
        self.max_contract_days = max_contract_days
        self.unknown_wait = unknown_wait
        self.cache = StateCache() if cache is None else cache  # (an empty one is falsy)
        self.publish_all = publish_all
        # services.runtime.batch: the single-document writes this process runs at once.
        self.updating = asyncio.Semaphore(WRITES_AT_ONCE)
        self.in_flight = InFlight(parking, self.cache)
        # Where the service's reading stands, per partition: the next offset, and when the
        # last record read was written; and the topics whose records bring aggregates.
        self.partitions = partitions
        self.next_offsets: dict[tuple[str, int], int] = {}
        self.read_until: dict[tuple[str, int], float] = {}
        self.sources = tuple(on.topic for on in table.consumes if on.releases is not None)

    async def handle_batch(self, records: Sequence[tuple[bytes, RecordOrigin]]) -> None:
        """A fetched batch: each aggregate's records in order, the aggregates side by side,
        and the I/O of all of them done by one Batch. Aggregates being created are guessed
        new; if a guess was wrong (a redelivered creation), the batch is handled again,
        reading them."""
        try:
            await self._handle_as_batch(records, guess=True)
        except GuessedWrong as wrong:
            log.info(
                "%s; handling the batch of %d record(s) again, reading first", wrong, len(records)
            )
            await self._handle_as_batch(records, guess=False)

    async def _handle_as_batch(
        self, records: Sequence[tuple[bytes, RecordOrigin]], *, guess: bool
    ) -> None:
        """An outage is raised (the batch is fetched again); a batch whose writes fail
        otherwise is handled again a record at a time, straight against the database, so
        that the record at fault is dead-lettered alone and the others go through."""
        assert self.publish_all is not None, "Records made without publish_all"
        batch = Batch(
            self.cache, self.publish_all, self.updating, guess=guess, published=self.published
        )
        token = current.set(batch)
        try:
            async with self.in_flight:
                started = time.perf_counter()
                try:
                    async with asyncio.TaskGroup() as group:
                        for run in _by_key(records):
                            group.create_task(self._handle_in_order(run))
                except BaseExceptionGroup as failed:
                    raise failed.exceptions[0] from None
                deciding = time.perf_counter() - started
                await batch.commit()
                self._published(records)
            self.metrics.batch(len(records), {"deciding": deciding, **batch.steps})
        except GuessedWrong:
            batch.forget()
            raise
        except Exception as error:
            batch.forget()  # its documents may be ahead of the database: read them again
            if is_outage(error):
                raise
            log.warning(
                "a batch of %d record(s) could not be stored (%s); handling them again one "
                "at a time",
                len(records),
                _cause(error),
                exc_info=error,
            )
            current.set(None)
            for raw, origin in records:
                await self.handle(raw, origin)
        finally:
            current.reset(token)

    async def _handle_in_order(self, run: Sequence[tuple[bytes, RecordOrigin]]) -> None:
        for raw, origin in run:
            await self.handle(raw, origin)

    def _published(self, records: Sequence[tuple[bytes, RecordOrigin]]) -> None:
        below = self.in_flight.published_below
        for _, origin in records:
            where = (origin.topic, origin.partition)
            below[where] = max(below.get(where, 0), origin.offset + 1)

    async def published(self, source: Sequence[Any]) -> bool:
        """Whether the batch of the record at `source` (topic, partition, offset) published
        what it stored: this process saw it do so, or the group committed past it (a batch
        publishes before its offsets are committed). Not known: False, so it is published
        again, with its ids."""
        topic, partition, offset = source
        where = (str(topic), int(partition))
        below = self.in_flight.published_below
        if int(offset) < below.get(where, 0):
            return True
        committed = await self.partitions.committed(*where) or 0
        below[where] = max(below.get(where, 0), committed)
        return int(offset) < committed

    async def handle(self, raw: bytes, origin: RecordOrigin) -> None:
        # The outermost record: a parked one released while it is handled writes under it.
        outer = handling.get() is None
        token = (
            handling.set(Handling((origin.topic, origin.partition, origin.offset), self.published))
            if outer
            else None
        )
        try:
            await self._handle_record(raw, origin)
        finally:
            if token is not None:
                handling.reset(token)

    async def _handle_record(self, raw: bytes, origin: RecordOrigin) -> None:
        on = self.table.routes[origin.topic]
        async with self.in_flight:
            started = time.perf_counter()
            message = self._read(on, raw, origin)
            with message_context(message):
                outcome = await self._outcome(on, message, raw, origin)
            type_ = getattr(message, "type", None) or getattr(message, "command_type", None)
            self.metrics.count(
                origin.topic, type_ or "unreadable", outcome, time.perf_counter() - started
            )
            self._read_past(origin)

    async def _outcome(self, on: On, message: Any, raw: bytes, origin: RecordOrigin) -> str:
        """Exactly one outcome per record, whatever its bytes. An outage (the database or
        the broker not answering) is raised, so that the partition is rewound and the record
        handled again once it is back; any other failure is tried again a few times, then
        the record is dead-lettered with its cause in a header, and the partition goes on."""
        what = _what(message, origin)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self._decide(on, message, raw, origin)
            except Exception as error:
                if is_outage(error):
                    await pause_for_outage(what, error)
                    raise
                if attempt < ATTEMPTS:
                    await asyncio.sleep(RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
                    continue
                cause = _cause(error)
                log.error(
                    "dead-lettered %s: it failed %d times (%s); it is on %s with its bytes, "
                    "and the partition goes on",
                    what,
                    ATTEMPTS,
                    cause,
                    topics.COMMANDS_DEAD_LETTER,
                    exc_info=error,
                )
                await self._dead_letter(raw, origin, f"failed {ATTEMPTS} times: {cause}")
        return outcomes.DEAD_LETTERED

    async def _dead_letter(self, raw: bytes, origin: RecordOrigin, error: str) -> None:
        """Dead-letters the record; in a batch, once the batch is stored."""
        send = partial(dead_letter_record, self.dead_letter, raw, origin, error)
        batch = current.get()
        if batch is None:
            await send()
        else:
            batch.dead_letters.append(send)

    async def _decide(self, on: On, message: Any, raw: bytes, origin: RecordOrigin) -> str:
        if isinstance(message, Unreadable):
            log.warning("dead-lettered record %s: %s", origin, message.error)
            await self._dead_letter(raw, origin, message.error)
            return outcomes.DEAD_LETTERED
        if isinstance(message, InvalidCommand):
            await self.refusals.refuse_invalid(message, origin)
            return outcomes.INVALID
        if message is None:
            return outcomes.SKIPPED
        misplaced = _misplaced(message, origin)
        if misplaced is not None:
            if on.kind is Kind.COMMAND:
                await self.refusals.refuse_misplaced(message, origin, misplaced)
                return outcomes.INVALID
            log.warning("dead-lettered record %s: %s", origin, misplaced)
            await self._dead_letter(raw, origin, misplaced)
            return outcomes.DEAD_LETTERED
        return await self._handle(on, message, raw, origin)

    def _read_past(self, origin: RecordOrigin) -> None:
        where = (origin.topic, origin.partition)
        self.next_offsets[where] = origin.offset + 1
        written = origin.timestamp or self.parking.clock().timestamp()
        self.read_until[where] = max(self.read_until.get(where, 0.0), written)

    async def has_read_up_to(self, partition: int, moment: datetime) -> bool:
        """Whether every record that could bring an aggregate of this partition into
        existence and was written before `moment` has been handled: the service has read
        past it, or all there is has been handled (by this instance, or before it started
        or took the partition over: the group's committed offset says so). A parked command
        is refused only then: its offer may well exist, in a backlog not read yet."""
        for topic in self.sources:
            where = (topic, partition)
            if self.read_until.get(where, 0.0) >= moment.timestamp():
                continue  # read past the moment
            newest = self.partitions.newest(topic, partition)
            if newest is None:
                return False  # not fetched yet (just assigned): asked again soon
            if self.next_offsets.get(where, 0) >= newest:
                continue  # nothing more there
            # Nothing (or not all) read here: asked only when a wait has run out, so the
            # broker round trip is rare, and kept: everything before it was handled.
            committed = await self.partitions.committed(topic, partition) or 0
            self.next_offsets[where] = max(self.next_offsets.get(where, 0), committed)
            if committed < newest:
                return False
        return True

    def _read(self, on: On, raw: bytes, origin: RecordOrigin) -> Any:
        """The record as a message: a command, event or internal command; Unreadable or
        InvalidCommand; or None for an event of a type this service does not read. Never
        raises: a record no rule foresaw is unreadable, not a stalled partition."""
        try:
            if on.kind is Kind.COMMAND:
                return parse_command(
                    on.adapter,
                    raw,
                    today=datetime.now(UTC).date(),
                    max_contract_days=self.max_contract_days,
                )
            return on.adapter.validate_json(raw)
        except ValidationError as error:
            if on.kind is Kind.EVENT and _of_another_type(error):
                return None  # an event for other consumers (tolerant reader)
            return Unreadable(_first_error(error))
        except Exception as error:  # whatever the bytes, one outcome
            return Unreadable(f"could not be read: {type(error).__name__}: {error}"[:500])

    async def _handle(self, on: On, message: Any, raw: bytes, origin: RecordOrigin) -> str:
        if isinstance(message, ReleaseParked):
            self._read_past(origin)  # an ask brings no aggregate: it is read once it is here
            await self.release(message.aggregate_id)
            return outcomes.HANDLED
        key = message.key
        batch = current.get()
        guessed = (
            batch if batch is not None and batch.guess and type(message) in on.creates else None
        )
        if (
            isinstance(message, Command)
            and guessed is None  # (see `handles`: a creating command's refusal repeats itself)
            and await self.refusals.already_refused(key, message.command_id)
        ):
            return outcomes.HANDLED
        if on.releases is None and self.parking.holds(key):
            await self.release(key)  # its aggregate may be here now: they go first
        if guessed is not None:
            guessed.new_ids.add(key)
        try:
            await _placed_at(origin, on.handle(self.handlers, message))
        except NotYetKnown as unknown:
            await self._park(on, message, raw, origin, unknown)
            return outcomes.PARKED
        finally:
            if guessed is not None:
                guessed.new_ids.discard(key)
        if on.releases is not None:
            released_key = on.releases(message)
            if self.parking.holds(released_key):
                await self.release(released_key)
        return outcomes.HANDLED

    async def _park(
        self, on: On, message: Any, raw: bytes, origin: RecordOrigin, unknown: NotYetKnown
    ) -> None:
        wait = self.unknown_wait if on.kind is Kind.COMMAND else None
        new = await self.parking.park(
            unknown.key, origin, raw, wait=wait, code=unknown.code, message=unknown.message
        )
        if new:
            log.info(
                "parked %s %s: %s; %s",
                message.type,
                id_of(message),
                unknown.message,
                "handled when it arrives"
                if wait is None
                else f"handled when it arrives, refused if it has not within {_seconds(wait)}",
                extra={"aggregate_id": unknown.key},
            )

    async def release(self, key: str) -> None:
        """Hands the aggregate's parked records to their handlers, oldest first, until one
        still finds no aggregate: it and the ones behind it wait on (or the ones whose wait
        ran out are refused)."""
        for parked in await self.parking.waiting(key):
            on = self.table.routes[parked.origin.topic]
            message = self._read(on, parked.raw, parked.origin)
            if message is None or isinstance(message, Unreadable | InvalidCommand):
                await self.parking.remove(parked)  # cannot happen: it was read once before
                continue
            if not await self._release_one(on, message, parked):
                return
        self.parking.forget(key)

    async def _release_one(self, on: On, message: Any, parked: Parked) -> bool:
        """Whether the record is out of the parking (handled, refused or dead-lettered)."""
        waited = (self.parking.clock() - parked.parked_at).total_seconds()
        what = f"parked {message.type} {id_of(message)} for {parked.key}"
        with message_context(message):
            try:
                failure = await failure_of(
                    what, lambda: _placed_at(parked.origin, on.handle(self.handlers, message))
                )
            except NotYetKnown as unknown:
                if parked.deadline is None or parked.deadline > self.parking.clock():
                    return False
                if not await self.has_read_up_to(parked.origin.partition, parked.deadline):
                    self.parking.remind(parked.key, self.parking.clock() + ASK_AGAIN)
                    log.info(
                        "%s: its wait ran out, but %s are still being read; asked again soon",
                        what,
                        " and ".join(self.sources),
                    )
                    return False
                await self.refusals.refuse(
                    message,
                    Rejection(
                        unknown.code,  # type: ignore[arg-type]
                        f"{unknown.message} (waited {_seconds(self.unknown_wait)} for it)",
                    ),
                )
                log.info("%s refused after %.1fs: %s", what, waited, unknown.message)
                outcome = outcomes.REFUSED_AFTER_WAIT
            else:
                if failure is not None:
                    await self._dead_letter(
                        parked.raw, parked.origin, f"handler failed: {failure!r}"
                    )
                    outcome = outcomes.DEAD_LETTERED
                else:
                    log.info("%s released after %.1fs: its aggregate arrived", what, waited)
                    outcome = outcomes.RELEASED
        await self.parking.remove(parked)
        self.metrics.count(parked.origin.topic, message.type, outcome, 0.0)
        return True


class Partitions(Protocol):
    """What this instance's consumers know of a partition they hold (None where none does)."""

    def newest(self, topic: str, partition: int) -> int | None:
        """The broker's newest offset, as last heard (None: not heard yet)."""

    async def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset: every record before it has been handled."""


class InFlight(ConsumerRebalanceListener):  # type: ignore[misc]
    """The partitions this instance's consumers own, and the records being handled.

    A rebalance gives partitions away only once no record is being handled (the next owner
    must not read an aggregate mid-change). A record fetched before its partition was given
    away is not handled at all (`owns` says no): its new owner handles it from the last
    committed offset. Together these close the window in which two instances could both
    be writing one aggregate."""

    def __init__(self, parking: Parking, cache: StateCache) -> None:
        self.parking = parking
        self.cache = cache
        self.count = 0
        self.owned: set[TopicPartition] = set()
        # Per partition owned, the offset below which every record's batch has published
        # what it stored (this process's batches, or the group's committed offset): the
        # outboxes those records wrote are published (services.runtime.outbox, OUTBOX_FROM).
        # Known only while the partition is owned: a later owner may handle those offsets
        # again (its commit lost) and crash with what it stored unpublished.
        self.published_below: dict[tuple[str, int], int] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    def owns(self, topic: str, partition: int) -> bool:
        return TopicPartition(topic, partition) in self.owned

    async def __aenter__(self) -> None:
        self.count += 1
        self._idle.clear()

    async def __aexit__(self, *_: object) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.owned -= revoked
        await self._idle.wait()
        if revoked:
            self.cache.clear()  # their next owner may write them
            for partition in revoked:
                self.published_below.pop((partition.topic, partition.partition), None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.owned |= assigned
        if assigned:
            await self.parking.reload()
            self.cache.relist()  # written by their previous owner up to its last batch


async def _placed_at(origin: RecordOrigin, handled: Awaitable[None]) -> None:
    """Handles the record with its place in its partition known to the rule (`Placed`)."""
    token = record_place.set(origin.offset + 1)
    try:
        await handled
    finally:
        record_place.reset(token)


def _by_key(
    records: Sequence[tuple[bytes, RecordOrigin]],
) -> list[list[tuple[bytes, RecordOrigin]]]:
    """The records of each key (each aggregate), in their order."""
    runs: dict[tuple[int, bytes | None], list[tuple[bytes, RecordOrigin]]] = {}
    for raw, origin in records:
        runs.setdefault((origin.partition, origin.key), []).append((raw, origin))
    return list(runs.values())


def release_request(parked_key: str, asked_at: datetime) -> ReleaseParked:
    """The ask to refuse what waited past its deadline (one id per ask: a repeat is new)."""
    return ReleaseParked(
        command_id=derived_id("release", parked_key, asked_at.isoformat()),
        aggregate_id=parked_key,
    )


def _what(message: Any, origin: RecordOrigin) -> str:
    """The record, for a person reading the log: its type, id, aggregate and position."""
    type_ = getattr(message, "type", None) or getattr(message, "command_type", None)
    if type_ is None:
        return f"record {origin}"
    key = getattr(message, "key", None) if not isinstance(message, InvalidCommand) else None
    aggregate = f" for {key}" if isinstance(key, str) else ""
    return f"{type_} {id_of(message)}{aggregate} ({origin})"


def _expected_key(message: Any) -> str | None:
    try:
        key = message.key
    except (AttributeError, TypeError):  # a message not keyed by an aggregate
        return None
    return key if isinstance(key, str) else None


def _misplaced(message: Any, origin: RecordOrigin) -> str | None:
    """Why the record is not on its aggregate's partition (None: it is). Applying it where
    it landed would make a second writer of its aggregate, and lose its order."""
    expected = _expected_key(message)
    if expected is None or origin.key == expected.encode():
        return None
    field_ = getattr(type(message), "KEY_FIELD", "aggregate id")
    landed = "no key" if origin.key is None else f"the key {_shown(origin.key)}"
    return (
        f"{message.type} for {expected} was published with {landed}; records are keyed by "
        f"their {field_} ({expected!r}), so that each aggregate's records are on one "
        "partition in order: publish it again keyed so"
    )


def _shown(key: bytes) -> str:
    text = key[:80].decode("utf-8", "replace")
    return repr(text) + ("..." if len(key) > 80 else "")


def _of_another_type(error: ValidationError) -> bool:
    # Only the message's own type unknown: a bad tag deeper inside (a terms' contract_type)
    # is a malformed event, dead-lettered like any other.
    return all(e["type"] == "union_tag_invalid" and e["loc"] == () for e in error.errors())


def _cause(error: Exception) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text.splitlines()[0][:300]}" if text else type(error).__name__


def _first_error(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "the record"
    return f"unreadable: {where}: {first['msg']}"[:500]


def _seconds(wait: timedelta) -> str:
    return f"{wait.total_seconds():g}s"
