"""Kafka for the CLI: publish a command and wait for its answer, or follow topics live.

The answer is found by ``command_id``: a service's event carries it as ``causation_id`` and a
``CommandRejected`` as ``command_id``. The consumer has no group: it is assigned every
partition of the topics it reads and starts at their ends BEFORE the command is published,
so an old record is never taken for the answer and a quick answer is never missed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from contracts import COMMAND_TOPICS, EVENT_ADAPTERS, Command, Event, topics
from offers_cli.errors import CliError, Unavailable
from services.runtime.kafka_access import client_options

EVENT_TOPICS: Final = topics.ANSWERS
ALL_TOPICS: Final = (*topics.COMMANDS, *topics.OUTPUTS)
CONNECT_TIMEOUT: Final = 10.0


def answer_topics(command_type: str) -> tuple[str, ...]:
    """Where the answer to a command (and what follows it) is published."""
    rejected = (topics.COMMANDS_REJECTED,)
    match COMMAND_TOPICS[command_type]:
        case topics.OFFERS_COMMANDS if command_type == "AcceptOffer":
            return (topics.OFFERS_EVENTS, topics.CONTRACTS_EVENTS, *rejected)
        case topics.OFFERS_COMMANDS:
            return (topics.OFFERS_EVENTS, *rejected)
        case topics.NEGOTIATIONS_COMMANDS:
            return (topics.NEGOTIATIONS_EVENTS, *rejected)
        case topics.CONTRACTS_COMMANDS:
            return (topics.CONTRACTS_EVENTS, *rejected)
        case topics.NOTIFICATIONS_COMMANDS if command_type == "SetNotificationPreferences":
            return (topics.NOTIFICATIONS_EVENTS, *rejected)
        case _:  # MarkNotificationsRead has no event: only a refusal is published
            return rejected


@dataclass(frozen=True)
class Record:
    topic: str
    key: str | None
    value: Any
    raw: bytes
    headers: dict[str, str]
    timestamp_ms: int

    @property
    def type(self) -> str | None:
        if isinstance(self.value, dict) and isinstance(self.value.get("type"), str):
            return str(self.value["type"])
        return self.headers.get("type")

    def field(self, name: str) -> Any:
        return self.value.get(name) if isinstance(self.value, dict) else None

    def event(self) -> Event | None:
        """The record as its ``contracts`` event, or ``None`` (a command, or unreadable)."""
        adapter = EVENT_ADAPTERS.get(self.topic)
        if adapter is None:
            return None
        try:
            event: Event = adapter.validate_json(self.raw)
        except ValidationError:
            return None
        return event


def _record(consumed: Any) -> Record:
    raw: bytes = consumed.value or b""
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    return Record(
        topic=consumed.topic,
        key=consumed.key.decode(errors="replace") if consumed.key else None,
        value=value,
        raw=raw,
        headers={k: v.decode(errors="replace") for k, v in consumed.headers or ()},
        timestamp_ms=consumed.timestamp,
    )


def answers(command: Command) -> Callable[[Record], bool]:
    def predicate(record: Record) -> bool:
        if record.topic == topics.COMMANDS_REJECTED:
            return bool(record.field("command_id") == command.command_id)
        return bool(record.field("causation_id") == command.command_id)

    return predicate


def caused_by(event_id: str, type_: str) -> Callable[[Record], bool]:
    return lambda record: record.type == type_ and record.field("causation_id") == event_id


def unreachable(bootstrap: str) -> Unavailable:
    return Unavailable(f"cannot reach Kafka at {bootstrap} — is `make run` going?")


async def _start(client: Any, bootstrap: str) -> None:
    try:
        await asyncio.wait_for(client.start(), CONNECT_TIMEOUT)
    except (KafkaError, OSError, TimeoutError):
        with suppress(Exception):
            await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
        raise unreachable(bootstrap) from None


async def _partitions(bootstrap: str, names: Sequence[str]) -> list[TopicPartition]:
    """Every partition of ``names``. Asked of the admin API, which never creates a topic: one
    that is missing means the services have not run yet."""
    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await _start(admin, bootstrap)
    try:
        described = await asyncio.wait_for(admin.describe_topics(list(names)), CONNECT_TIMEOUT)
    except (KafkaError, OSError, TimeoutError):
        raise unreachable(bootstrap) from None
    finally:
        await admin.close()
    partitions = []
    for topic in described:
        if not topic["partitions"]:
            raise Unavailable(
                f"topic {topic['topic']} does not exist yet on {bootstrap} — start the "
                "services once (`make run`): they create their topics"
            )
        numbers = sorted(p["partition"] for p in topic["partitions"])
        partitions += [TopicPartition(topic["topic"], n) for n in numbers]
    return partitions


async def _reader(bootstrap: str, names: Sequence[str], *, from_beginning: bool) -> Any:
    """A group-less consumer on every partition of ``names``, positioned now."""
    partitions = await _partitions(bootstrap, names)
    consumer = AIOKafkaConsumer(
        **client_options(bootstrap), enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await _start(consumer, bootstrap)
    try:
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)  # resolve "end" now, not at the first fetch
    except BaseException:
        await consumer.stop()
        raise
    return consumer


class Session:
    """A producer, and a reader of the answer topics from their end (``async with``)."""

    def __init__(self, bootstrap: str, listen: Sequence[str] = ()) -> None:
        self.bootstrap = bootstrap
        self._listen = tuple(dict.fromkeys(listen))
        self._producer: Any = None
        self._consumer: Any = None
        self._seen: list[Record] = []

    async def __aenter__(self) -> Session:
        if self._listen:
            self._consumer = await _reader(self.bootstrap, self._listen, from_beginning=False)
        try:
            self._producer = AIOKafkaProducer(
                **client_options(self.bootstrap), linger_ms=0, acks="all"
            )
            await _start(self._producer, self.bootstrap)
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        for client in (self._producer, self._consumer):
            if client is not None:
                with suppress(Exception):
                    await client.stop()

    async def send(self, command: Command) -> None:
        try:
            await asyncio.wait_for(
                self._producer.send_and_wait(
                    COMMAND_TOPICS[command.type],
                    command.model_dump_json().encode(),
                    key=command.key.encode(),
                    headers=[("type", command.type.encode())],
                ),
                CONNECT_TIMEOUT,
            )
        except (KafkaError, OSError, TimeoutError):
            raise unreachable(self.bootstrap) from None

    async def wait_for(self, predicate: Callable[[Record], bool], within: float) -> Record | None:
        """The first record read (now or before) that matches, or ``None`` after ``within`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        checked = 0
        while True:
            for record in self._seen[checked:]:
                if predicate(record):
                    return record
            checked = len(self._seen)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                batches = await self._consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            except KafkaError:
                raise unreachable(self.bootstrap) from None
            for batch in batches.values():
                self._seen += [_record(consumed) for consumed in batch]

    async def answer(self, command: Command, within: float) -> Event:
        """The event that answers ``command`` (a ``CommandRejected`` if it was refused)."""
        record = await self.wait_for(answers(command), within)
        if record is None:
            raise Unavailable(
                f"no answer to {command.type} {command.command_id} within {within:g}s — are "
                "the services running (`make run`)? (a repeated --command-id is answered once)"
            )
        return _event(record)

    async def follow(self, event_id: str, type_: str, within: float) -> Event | None:
        """The ``type_`` event caused by ``event_id`` (what a service did next), if it comes."""
        record = await self.wait_for(caused_by(event_id, type_), within)
        return None if record is None else _event(record)


def _event(record: Record) -> Event:
    event = record.event()
    if event is None:
        raise CliError(f"cannot read the {record.type} on {record.topic}: {record.raw[:200]!r}")
    return event


async def watch(
    bootstrap: str,
    names: Sequence[str],
    show: Callable[[Record], None],
    *,
    from_beginning: bool = False,
) -> None:
    """Calls ``show`` for every record published on ``names`` from now on, until cancelled."""
    consumer = await _reader(bootstrap, names, from_beginning=from_beginning)
    try:
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=500)
            except KafkaError:
                raise unreachable(bootstrap) from None
            records = [_record(c) for batch in batches.values() for c in batch]
            for record in sorted(records, key=lambda r: r.timestamp_ms):
                show(record)
    finally:
        await consumer.stop()
