"""The gateway's Kafka side: a producer that publishes commands as the CLI does, and a
reader of the answer topics that remembers each recent command's outcome.

Both clients are made in :func:`new_producer` / :func:`new_consumer`, secured as the
environment says (services.runtime.kafka_access).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from contextlib import suppress
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from contracts import COMMAND_TOPICS, Command, topics
from services.runtime.kafka import ensure_topics
from services.runtime.kafka_access import client_options

log = logging.getLogger(__name__)

# Where a command's answer is published: the event it caused carries its id as
# causation_id, a refusal carries it as command_id.
ANSWER_TOPICS: Final = (
    topics.OFFERS_EVENTS,
    topics.NEGOTIATIONS_EVENTS,
    topics.CONTRACTS_EVENTS,
    topics.NOTIFICATIONS_EVENTS,  # NotificationPreferencesChanged
    topics.COMMANDS_REJECTED,
)
# The commands themselves, for their actor: an outcome is shown to the command's actor only,
# whichever gateway instance (or the CLI) published the command.
COMMAND_TOPIC_NAMES: Final = tuple(dict.fromkeys(COMMAND_TOPICS.values()))
FOLLOWED_TOPICS: Final = (*ANSWER_TOPICS, *COMMAND_TOPIC_NAMES)
RETRY_SECONDS: Final = 2.0

Outcome = dict[str, Any]


class KafkaUnavailable(Exception):
    """The command could not be handed to Kafka; the message says so to a person."""


def new_producer(bootstrap: str, timeout_seconds: float) -> AIOKafkaProducer:
    # Idempotent with acks=all: a retried send is written once, and only once every in-sync
    # replica has it. A batch not delivered within the timeout expires instead of lingering.
    return AIOKafkaProducer(
        **client_options(bootstrap),
        client_id="gateway",
        acks="all",
        enable_idempotence=True,
        linger_ms=0,
        request_timeout_ms=int(timeout_seconds * 1000),
    )


def new_consumer(bootstrap: str) -> AIOKafkaConsumer:
    # No group: every gateway instance reads every partition, so any of them can tell
    # any command's outcome.
    return AIOKafkaConsumer(
        **client_options(bootstrap),
        client_id="gateway-outcomes",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )


class CommandBus:
    """Publishes commands to their topics, keyed as SPEC §4 says, with the CLI's headers.
    Connects on first use (and again after a failure), so the gateway starts without Kafka
    and answers 503 until it comes."""

    def __init__(self, bootstrap: str, timeout_seconds: float) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout_seconds
        self._producer: AIOKafkaProducer | None = None
        self._connecting = asyncio.Lock()

    def _unreachable(self) -> KafkaUnavailable:
        return KafkaUnavailable(
            f"Kafka at {self.bootstrap} is not answering, so the command was not sent; "
            "try again in a moment (the same command_id is never handled twice)"
        )

    def _unconfirmed(self) -> KafkaUnavailable:
        # The producer keeps a record it could not deliver and may deliver it once the
        # broker is back: the honest answer is "maybe", and a retry is what makes it sure.
        return KafkaUnavailable(
            f"Kafka at {self.bootstrap} did not confirm the command within {self.timeout:g}s; "
            "it may still arrive. Send it again with the same command_id: a command id is "
            "handled once, so the repeat is harmless"
        )

    async def connect(self, within: float | None = None) -> AIOKafkaProducer:
        async with self._connecting:
            if self._producer is None:
                producer = new_producer(self.bootstrap, self.timeout)
                try:
                    await asyncio.wait_for(producer.start(), within or self.timeout)
                except (KafkaError, OSError, TimeoutError):
                    with suppress(Exception):
                        await producer.stop()
                    raise self._unreachable() from None
                self._producer = producer
            return self._producer

    async def ping(self, within: float) -> bool:
        """Whether Kafka answers now (a metadata request), within ``within`` seconds."""
        try:
            producer = await self.connect(within)
            await asyncio.wait_for(producer.client.fetch_all_metadata(), within)
        except (KafkaUnavailable, KafkaError, OSError, TimeoutError):
            return False
        return True

    async def publish(self, command: Command) -> None:
        producer = await self.connect()
        try:
            await asyncio.wait_for(
                producer.send_and_wait(
                    COMMAND_TOPICS[command.type],
                    command.model_dump_json().encode(),
                    key=command.key.encode(),
                    headers=[("type", command.type.encode())],
                ),
                self.timeout + 1,  # the producer's own request timeout comes first
            )
        except (KafkaError, OSError, TimeoutError):
            raise self._unconfirmed() from None

    async def close(self) -> None:
        if self._producer is not None:
            with suppress(Exception):
                await self._producer.stop()
            self._producer = None


class Outcomes:
    """The answers to recent commands (the ``capacity`` newest), by command id, and a way
    to wait for one. A command published before the gateway started has none here."""

    def __init__(self, bootstrap: str, capacity: int) -> None:
        self.bootstrap = bootstrap
        self.capacity = capacity
        self.ready = False
        self._known: OrderedDict[str, Outcome] = OrderedDict()
        self._actors: OrderedDict[str, str] = OrderedDict()
        self._waiting: dict[str, list[asyncio.Future[Outcome]]] = {}

    def get(self, command_id: str) -> Outcome | None:
        return self._known.get(command_id)

    def note_actor(self, command_id: str, actor: str) -> None:
        """Who sent a command: told by this instance as it publishes, and read from the
        command topics for the commands that others published."""
        self._actors.setdefault(command_id, actor)
        while len(self._actors) > self.capacity:
            self._actors.popitem(last=False)

    def actor_of(self, command_id: str) -> str | None:
        outcome = self._known.get(command_id) or {}
        rejection = outcome.get("rejection") or {}
        return rejection.get("actor_id") or self._actors.get(command_id)

    async def wait(self, command_id: str, within: float) -> Outcome | None:
        known = self._known.get(command_id)
        if known is not None or within <= 0:
            return known
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(command_id, []).append(future)
        try:
            return await asyncio.wait_for(future, within)
        except TimeoutError:
            return None
        finally:
            waiters = self._waiting.get(command_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiting.pop(command_id, None)

    def record(self, topic: str, value: Any) -> None:
        if not isinstance(value, dict):
            return
        if topic in COMMAND_TOPIC_NAMES:
            command_id, actor = value.get("command_id"), value.get("actor_id")
            if isinstance(command_id, str) and isinstance(actor, str):
                self.note_actor(command_id, actor)
            return
        if topic == topics.COMMANDS_REJECTED:
            command_id = value.get("command_id")
            outcome: Outcome = {"status": "rejected", "rejection": value}
        else:
            command_id = value.get("causation_id")
            outcome = {"status": "done", "event": value}
        if not isinstance(command_id, str) or command_id in self._known:
            return  # the first answer is the answer; what follows is its consequences
        self._known[command_id] = outcome
        while len(self._known) > self.capacity:
            self._known.popitem(last=False)
        for future in self._waiting.pop(command_id, []):
            if not future.done():
                future.set_result(outcome)

    async def run(self) -> None:
        """Reads the answer topics from their ends, for ever; waits for Kafka when it is away."""
        while True:
            consumer = new_consumer(self.bootstrap)
            try:
                # The gateway may start before the services: it makes the topics as they
                # would (the same KAFKA_TOPIC_* settings), so it has partitions to follow.
                counts = await ensure_topics(self.bootstrap, FOLLOWED_TOPICS)
                await consumer.start()
                partitions = [
                    TopicPartition(t, n) for t in FOLLOWED_TOPICS for n in range(counts[t])
                ]
                consumer.assign(partitions)
                await consumer.seek_to_end(*partitions)
                for partition in partitions:
                    await consumer.position(partition)  # "the end" is now, not at first fetch
                self.ready = True
                log.info("following command outcomes on %s", ", ".join(FOLLOWED_TOPICS))
                while True:
                    batches = await consumer.getmany(timeout_ms=500)
                    for batch in batches.values():
                        for record in batch:
                            with suppress(ValueError):
                                self.record(record.topic, json.loads(record.value or b""))
            except (KafkaError, OSError) as error:
                self.ready = False
                log.warning(
                    "cannot follow command outcomes on Kafka at %s (%s); retrying in %gs",
                    self.bootstrap,
                    error or type(error).__name__,
                    RETRY_SECONDS,
                )
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                with suppress(Exception):
                    await consumer.stop()
