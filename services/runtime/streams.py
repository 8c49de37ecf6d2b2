"""Pushed streams (Server-Sent Events) of a service's own events, resumable with Last-Event-ID.

Every item of a stream has a position: a whole number, strictly increasing in the order the
service stored the items, given by the stream's one writer (a thread's handler numbers its
messages and its closing; an inbox's handler its notifications). The position is stored
with the item and travels with its event in the Kafka header STREAM_ID_HEADER, so:

- **live**: each instance runs one group-less consumer over every partition of the topic,
  from its end, and hands each record to this instance's clients of the record's key; a
  client on any instance gets every item, whichever instance stored it;
- **resume**: a client that names the last id it has first gets what the database holds
  after it, then the live items. Its live queue is registered *before* the database is
  read, and an event is published only after its item is stored (services.runtime.uow), so
  every item is in the read or in the queue or in both; the position tells, and it is sent
  once.

A client that falls behind by more than STREAM_CLIENT_BUFFER items is sent one `overflow`
item and disconnected (it resumes with Last-Event-ID); nothing waits for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from .config import Settings
from .http import BadRequest, error_response
from .kafka import ensure_topics
from .metrics import ServiceMetrics
from .outbox import STREAM_ID_HEADER

log = logging.getLogger(__name__)

# The largest position a client may name: MongoDB's 64-bit integers.
MAX_POSITION = 2**63 - 1
FEED_RESTART_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Item:
    """One item of a stream: its position, its event's type and the event's JSON."""

    position: int | None
    """None: published without a position (by an older version); read from the database."""
    type: str
    data: str

    def event(self) -> ServerSentEvent:
        return ServerSentEvent(self.data, event=self.type, id=str(self.position))


# The items of one stream stored after a position, oldest first (from the database).
ReadAfter = Callable[[int], AsyncIterator[Item]]


def parse_position(raw: str, name: str) -> int:
    """A stream id a client sends back: a whole number this stream handed out."""
    text = raw.strip()
    if not text.isdigit() or not text.isascii() or len(text) > 19 or int(text) > MAX_POSITION:
        raise BadRequest(
            f"{name} must be the id of an item this stream sent (a whole number), got {raw!r}"
        )
    return int(text)


def resume_position(request: Request) -> int:
    """Where a client resumes: after its Last-Event-ID header, or after `?last_event_id=`
    (a browser's first EventSource connect cannot set headers); 0 is from the start. The
    header wins, because a browser reconnecting keeps the URL of its first connect and sends
    the newer id in the header."""
    header = request.headers.get("last-event-id")
    if header is not None and header.strip():
        return parse_position(header, "Last-Event-ID")
    query = request.query_params.get("last_event_id")
    if query is not None and query.strip():
        return parse_position(query, "last_event_id")
    return 0


class Client:
    """One connected client: its bounded queue of live items, and whether it fell behind."""

    def __init__(self, key: str, buffer: int) -> None:
        self.key = key
        self.queue: asyncio.Queue[Item | None] = asyncio.Queue(buffer)
        self.cut_off_because: str | None = None

    def offer(self, item: Item) -> None:
        """Never waits: a client whose queue is full is cut off, not waited for."""
        if self.cut_off_because is not None:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.cut_off_because = (
                f"you fell behind by more than {self.queue.maxsize} items; "
                "reconnect with Last-Event-ID"
            )

    def cut_off(self, reason: str) -> None:
        if self.cut_off_because is None:
            self.cut_off_because = reason
        # Wakes a client waiting on an empty queue (a full one does not keep it waiting).
        with suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


class TooManyClients(Exception):
    pass


class Hub:
    """This instance's connected clients, by stream key (an offer_id, a recipient_id)."""

    def __init__(self, *, max_clients: int, buffer: int) -> None:
        self.max_clients = max_clients
        self.buffer = buffer
        self._by_key: dict[str, set[Client]] = {}
        self.count = 0

    def join(self, key: str) -> Client:
        if self.count >= self.max_clients:
            raise TooManyClients
        client = Client(key, self.buffer)
        self._by_key.setdefault(key, set()).add(client)
        self.count += 1
        return client

    def leave(self, client: Client) -> None:
        """Idempotent: a stream ends once, but may be told so twice."""
        clients = self._by_key.get(client.key)
        if clients is None or client not in clients:
            return
        clients.discard(client)
        self.count -= 1
        if not clients:
            del self._by_key[client.key]

    def follows(self, key: str) -> bool:
        return key in self._by_key

    def deliver(self, key: str, item: Item) -> None:
        for client in tuple(self._by_key.get(key, ())):
            client.offer(item)

    def cut_off_all(self, reason: str) -> None:
        for clients in tuple(self._by_key.values()):
            for client in tuple(clients):
                client.cut_off(reason)


def overflow_event(reason: str, last: int) -> ServerSentEvent:
    """The last item a client that cannot be kept up to date gets. It has no id, so the
    client's Last-Event-ID stays at the last item it did get."""
    data = json.dumps({"reason": f"{reason}: {last}", "last_event_id": str(last)})
    return ServerSentEvent(data, event="overflow")


async def merged(
    client: Client, after: int, read_after: ReadAfter
) -> AsyncIterator[ServerSentEvent]:
    """The stored items after `after`, then the live ones, each once and in order. The
    client must have joined the hub before this reads the database."""
    last = after
    async for item in read_after(last):
        assert item.position is not None
        yield item.event()
        last = item.position
    while True:
        if client.cut_off_because is not None:
            yield overflow_event(client.cut_off_because, last)
            return
        live = await client.queue.get()
        if live is None:
            continue
        if live.position is None:  # no position on the wire: the database has it in order
            async for item in read_after(last):
                assert item.position is not None
                yield item.event()
                last = item.position
        elif live.position > last:
            yield live.event()
            last = live.position


class LiveFeed:
    """One group-less consumer over every partition of a topic, from its end, handing each
    record to the hub. Until it has its positions (`ready`) no stream is served, so no live
    item can fall between a client's database read and the feed's start."""

    def __init__(self, settings: Settings, topic: str, hub: Hub) -> None:
        self.settings = settings
        self.topic = topic
        self.hub = hub
        self.ready = False

    async def run(self) -> None:
        while True:
            try:
                await self._follow()
            except Exception as error:  # a feed that stopped would leave every stream silent
                log.warning(
                    "%s stream feed of %s lost (%s: %s); its clients are told to reconnect, "
                    "restarting in %.0fs",
                    self.settings.service_name,
                    self.topic,
                    type(error).__name__,
                    error,
                    FEED_RESTART_SECONDS,
                )
            finally:
                self.ready = False
                # Records may have passed while the feed was down: resume from the database.
                self.hub.cut_off_all(
                    "this instance's live feed restarted; reconnect with Last-Event-ID"
                )
            await asyncio.sleep(FEED_RESTART_SECONDS)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            **self.settings.kafka_options(),
            client_id=f"{self.settings.service_name}-streams",
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
        )
        await consumer.start()
        try:
            partitions = await self._partitions()
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            for partition in partitions:
                await consumer.position(partition)  # fixed now, before any client is served
            self.ready = True
            log.info(
                "%s streams follow %s (%d partitions) from its end",
                self.settings.service_name,
                self.topic,
                len(partitions),
            )
            # A batch is handed out at once, so it must fit in a client's queue with room
            # to spare, or a client that keeps up would be cut off by the batch alone.
            batch = max(1, min(500, self.hub.buffer // 2))
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=batch)
                for records in batches.values():
                    for record in records:
                        self._deliver(record)
                await asyncio.sleep(0)  # the clients' turn to take what they were given
        finally:
            await consumer.stop()

    async def _partitions(self) -> list[TopicPartition]:
        # The service created its topics at start-up; this only counts the partitions.
        counts = await ensure_topics(
            self.settings.kafka_bootstrap_servers,
            [self.topic],
            self.settings.topic_layout,
            self.settings.kafka_security,
        )
        return [TopicPartition(self.topic, number) for number in range(counts[self.topic])]

    def _deliver(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.key is None or record.value is None:
            return
        key = record.key.decode(errors="replace")
        if not self.hub.follows(key):
            return  # nobody here follows it: not worth reading
        headers = {name: value.decode(errors="replace") for name, value in record.headers}
        raw = headers.get(STREAM_ID_HEADER)
        position = int(raw) if raw is not None and raw.isdigit() else None
        item = Item(position, headers.get("type", "message"), record.value.decode())
        self.hub.deliver(key, item)


class Streams:
    """One service's pushed streams: the hub of its clients and the feed that fills it."""

    def __init__(self, settings: Settings, topic: str, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.hub = Hub(
            max_clients=settings.stream_max_connections, buffer=settings.stream_client_buffer
        )
        self.feed = LiveFeed(settings, topic, self.hub)

    async def run(self) -> None:
        await self.feed.run()

    def respond(self, request: Request, key: str, read_after: ReadAfter) -> Response:
        after = resume_position(request)
        if not self.feed.ready:
            return unavailable("the stream is starting (following the live events)", retry_after=1)
        try:
            client = self.hub.join(key)
        except TooManyClients:
            return unavailable(
                f"this instance serves its maximum of {self.hub.max_clients} streams "
                "(STREAM_MAX_CONNECTIONS); try again later",
                retry_after=5,
            )

        async def events() -> AsyncIterator[ServerSentEvent]:
            try:
                async for event in merged(client, after, read_after):
                    yield event
            finally:
                self.hub.leave(client)
                if client.cut_off_because is not None:
                    self.metrics.streams_cut_off.labels(self.settings.service_name).inc()
                    log.info(
                        "%s stream of %s: a client was cut off (%s)",
                        self.settings.service_name,
                        key,
                        client.cut_off_because,
                    )

        return EventSourceResponse(
            events(),
            ping=self.settings.stream_heartbeat_seconds,
            ping_message_factory=lambda: ServerSentEvent(comment="keep-alive"),
            send_timeout=self.settings.stream_send_timeout_seconds,
            # A response that never started its body leaves the hub here.
            background=BackgroundTask(self.hub.leave, client),
        )


def unavailable(message: str, *, retry_after: int) -> Response:
    response = error_response(503, "unavailable", message)
    response.headers["Retry-After"] = str(retry_after)
    return response
